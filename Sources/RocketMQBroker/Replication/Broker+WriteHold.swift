import RocketMQStore

/// A master's writes at start are held until its NameServers answered its registration (see
/// `WriteHold` for why): accepted, it takes writes; refused (a promoted master of its broker
/// name has a higher epoch), it stays fenced and never took a send it would strand.
extension Broker {
    /// Holds this master's writes (sends, receives, acks: everything that appends to its log)
    /// until `awaitRegistrationVerdict` ends the hold. Call once, before serving, on a broker
    /// that registers with NameServers. A slave does not hold (it takes no writes anyway), nor a
    /// member of an etcd-elected group (its lease fences it).
    /// - Returns: whether writes are held.
    @discardableResult
    public func holdWritesUntilRegistered() -> Bool {
        let limit = configuration.registrationHold
        guard electedRole == nil, !isSlave, limit > .zero else { return false }
        writeHold.hold(until: .now + limit)
        store.isReplicaLog = true
        logger.info("holding writes until a NameServer accepts this broker as master")
        return true
    }

    /// Whether this master's writes are held, waiting for its NameServers' answer.
    public var isHoldingWrites: Bool { writeHold.isHeld }

    /// Ends the hold when the NameServers have answered the registration: as soon as all `total`
    /// accepted it; `grace` after the first accepted, when the others have not answered by then
    /// (one may be down); at the hold's deadline (`BrokerConfiguration.registrationHold` after
    /// it began) in any case, when none answered too (they are unreachable; the broker must work
    /// without them, as before). A refusal ends it through `supersededAsMaster`, with the store
    /// fenced. Returns when the hold ended or the task is cancelled; polls `accepted` every 10 ms.
    public func awaitRegistrationVerdict(nameServers total: Int, accepted: @Sendable () -> Int, grace: Duration = .seconds(2)) async {
        guard total > 0 else {
            releaseWrites("no usable NameServer address")
            return
        }
        let deadline = writeHold.deadline
        var firstAcceptance: ContinuousClock.Instant?
        while writeHold.isHeld, !Task.isCancelled {
            let count = accepted()
            let now = ContinuousClock.now
            if count >= total {
                releaseWrites(total == 1 ? "the NameServer accepted this broker as master" : "every NameServer accepted this broker as master")
                return
            }
            if count > 0 {
                let first = firstAcceptance ?? now
                firstAcceptance = first
                if now - first >= grace || now >= deadline {
                    releaseWrites("\(count) of \(total) NameServers accepted this broker as master; the others did not answer in time")
                    return
                }
            } else if now >= deadline {
                logger.warning("no NameServer answered the registration: taking writes anyway", metadata: ["waited": "\(configuration.registrationHold)"])
                releaseWrites("no NameServer answered within \(configuration.registrationHold)")
                return
            }
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Ends the hold, taking writes unless a NameServer's refusal fenced the broker meanwhile.
    func releaseWrites(_ why: String) {
        writeHold.end {
            if !superseded.load(ordering: .relaxed), !isSlave {
                store.isReplicaLog = false
                logger.notice("taking writes", metadata: ["why": "\(why)"])
            }
        }
    }

    /// Waits while writes are held (until the hold ends, by its deadline); returns at once when
    /// they are not (one relaxed load). Calls that write wait here before they touch any state,
    /// so a client never sees a refusal for the few milliseconds a registration takes.
    /// - Throws: `.notMaster` when the hold is still on after all (the call was cancelled, or
    ///   nothing ended the hold by its deadline): the call must change nothing.
    func waitForWriteHold() async throws(BrokerError) {
        guard writeHold.isHeld else { return }
        await writeHold.wait()
        if writeHold.isHeld { throw startingRefusal }
    }

    private var startingRefusal: BrokerError {
        .notMaster("broker \(configuration.brokerName) is starting: it takes writes once a NameServer has accepted it as master")
    }

    /// Why this master takes no writes of its own now, for operators (`GetReplicationStatus`);
    /// empty when it takes them, and on a slave or an etcd member waiting for its election.
    var writesRefused: String {
        if superseded.load(ordering: .relaxed) {
            return "superseded as master by a promoted one (a NameServer refused it): restart it as a slave of that master"
        }
        if writeHold.isHeld {
            let left = max(.zero, writeHold.deadline - .now).components.seconds + 1
            return "holding writes until a NameServer accepts it as master (at most \(left) s more)"
        }
        return ""
    }

    /// A store error as this broker's answer, saying why it refuses writes when it does.
    func brokerError(_ error: StoreError) -> BrokerError {
        if case .replica = error {
            let name = configuration.brokerName
            if superseded.load(ordering: .relaxed) {
                return .notMaster("broker \(name) was superseded as master by a promoted one (its NameServers refused it): it takes no writes")
            }
            if writeHold.isHeld { return startingRefusal }
        }
        return BrokerError(error)
    }
}
