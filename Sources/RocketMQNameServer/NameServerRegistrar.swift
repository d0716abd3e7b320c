import Logging
import RocketMQAPI
import RocketRPC
import Synchronization

/// A broker's side of registration: keeps one RegisterBroker stream open to **every** NameServer it
/// is given, each on its own (a NameServer that is down does not delay the others).
///
/// On each stream it sends the full registration first, then a heartbeat every `heartbeatInterval`
/// (carrying the topic list whenever it changed since the last message) and, on
/// ``registrationChanged()``, an update at once. A stream that fails, ends, or goes without an ack for
/// three heartbeat intervals (15 s at least) is replaced after a back-off (0.5 s doubling up to `maxReconnectDelay`).
/// Cancelling the task running ``run()`` closes every stream, which unregisters the broker at once.
/// A NameServer that refuses the registration with FAILED_PRECONDITION (a master superseded by a
/// promoted one: `BrokerRegistration.masterEpoch`) makes the registrar withdraw: it closes every
/// stream and registers nowhere again until a new registrar runs.
///
/// Thread-safe. Usage:
/// ```swift
/// let registrar = NameServerRegistrar(nameServers: ["10.0.0.1:9876", "10.0.0.2:9876"], logger: logger) {
///     BrokerRegistration(clusterName: "DefaultCluster", brokerName: "broker-a", endpoints: ["10.0.0.5:8081"], topics: topics.snapshot())
/// }
/// let task = Task { await registrar.run() }
/// // after creating a topic:
/// registrar.registrationChanged()
/// ```
public final class NameServerRegistrar: Sendable {
    /// The NameServers, as given (`host:port`).
    public let nameServers: [String]
    /// How often a heartbeat goes out on each stream.
    public let heartbeatInterval: Duration
    /// The longest wait between reconnection attempts.
    public let maxReconnectDelay: Duration
    private let registration: @Sendable () -> BrokerRegistration
    private let onRefused: (@Sendable (RPCError) -> Void)?
    private let logger: Logger

    private struct State {
        var wakers: [Int: AsyncStream<Void>.Continuation] = [:]
        var nextWaker = 0
        var acknowledgedBy: Set<String> = []
        var withdrawn = false
    }

    private let state = Mutex(State())

    /// - Parameters:
    ///   - nameServers: `host:port` of each NameServer; entries that do not parse are logged and skipped.
    ///   - heartbeatInterval: default 10 s (RocketMQ's); keep it well below the NameServers' expiry.
    ///   - maxReconnectDelay: default 3 s: a NameServer that restarted hears from every broker
    ///     within it, and until the promoted master of a group is back it may accept that
    ///     group's former master (see `RouteTable.register`). Retrying a NameServer that is down
    ///     every 3 s costs next to nothing.
    ///   - onRefused: called when a NameServer refuses the registration with FAILED_PRECONDITION
    ///     (a master superseded by a promoted one: `BrokerRegistration.masterEpoch`), once the
    ///     registrar has withdrawn from every NameServer.
    ///   - registration: called for every message sent, so it always reflects the broker's current
    ///     topics; must be cheap and must not block.
    public init(
        nameServers: [String],
        heartbeatInterval: Duration = .seconds(10),
        maxReconnectDelay: Duration = .seconds(3),
        logger: Logger = Logger(label: "rocketmq.namesrv.registrar"),
        onRefused: (@Sendable (RPCError) -> Void)? = nil,
        registration: @escaping @Sendable () -> BrokerRegistration
    ) {
        self.nameServers = nameServers
        self.heartbeatInterval = heartbeatInterval
        self.maxReconnectDelay = maxReconnectDelay
        self.logger = logger
        self.onRefused = onRefused
        self.registration = registration
    }

    /// The distinct NameServers it registers with: `nameServers` without repeats or addresses
    /// that do not parse (as `registeredWith` counts them).
    public var usableNameServers: Set<String> {
        Set(nameServers.filter { BrokerEndpoint(parsing: $0) != nil })
    }

    /// The NameServers whose current stream has acknowledged the registration, sorted.
    public var registeredWith: [String] {
        state.withLock { $0.acknowledgedBy.sorted() }
    }

    /// Whether a NameServer's refusal made the registrar withdraw from all of them.
    public var isWithdrawn: Bool {
        state.withLock { $0.withdrawn }
    }

    /// Closes every stream (unregistering the broker) and registers nowhere again: each stream,
    /// woken, finds the registrar withdrawn and ends.
    private func withdraw() {
        state.withLock { $0.withdrawn = true }
        registrationChanged()
    }

    /// Sends the current registration to every connected NameServer now instead of at the next heartbeat.
    public func registrationChanged() {
        let wakers = state.withLock { Array($0.wakers.values) }
        for waker in wakers { waker.yield() }
    }

    /// Keeps the streams open until the task is cancelled; then closes them and returns. Returns only
    /// on cancellation, even with no usable NameServer, so it can run as a ServiceLifecycle service.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            var started = 0
            for address in nameServers {
                guard let endpoint = BrokerEndpoint(parsing: address) else {
                    logger.error("not a host:port NameServer address; skipped", metadata: ["nameServer": "\(address)"])
                    continue
                }
                group.addTask { await self.maintain(endpoint, address: address) }
                started += 1
            }
            if started == 0 {
                logger.notice("no NameServer to register with; the broker is reachable only directly")
                group.addTask { await Self.sleepUntilCancelled() }
            }
        }
    }

    private static func sleepUntilCancelled() async {
        while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
    }

    // MARK: One NameServer

    /// Reconnects to one NameServer until cancelled.
    private func maintain(_ endpoint: BrokerEndpoint, address: String) async {
        var configuration = ChannelConfiguration(host: endpoint.host, port: endpoint.port, connectTimeout: .seconds(5))
        configuration.backoff = ChannelConfiguration.Backoff(initial: .milliseconds(500), maximum: maxReconnectDelay)
        let channel = RPCChannel(configuration: configuration, logger: logger)
        let client = Rocketmq_Namesrv_V1_NameServer.Client(channel: channel)
        var failures = 0
        while !Task.isCancelled {
            if isWithdrawn {
                // Withdrawn for good; `run()` still returns only on cancellation.
                await Self.sleepUntilCancelled()
                break
            }
            let acknowledged = await stream(client, address: address, failures: failures)
            failures = acknowledged ? 0 : failures + 1
            guard !Task.isCancelled else { break }
            let delay = min(.milliseconds(500) * (1 << min(failures, 10)), maxReconnectDelay)
            do {
                try await Task.sleep(for: delay)
            } catch {
                break
            }
        }
        await channel.close()
    }

    /// One RegisterBroker stream, from the registration until it fails or the task is cancelled.
    /// - Returns: whether the NameServer acknowledged at least one message.
    /// - Parameter failures: failed attempts in a row before this one; only the first is logged as a warning.
    private func stream(_ client: Rocketmq_Namesrv_V1_NameServer.Client, address: String, failures: Int) async -> Bool {
        let (wakeups, waker) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let wakerID = state.withLock { state in
            defer { state.nextWaker += 1 }
            state.wakers[state.nextWaker] = waker
            return state.nextWaker
        }
        let session = StreamState()
        defer {
            waker.finish()
            state.withLock { state in
                state.wakers[wakerID] = nil
                state.acknowledgedBy.remove(address)
            }
        }
        let interval = heartbeatInterval
        // Replacing a stream unregisters the broker until the new one registers, so only a
        // NameServer silent for long is given up on: a busy one can take seconds to ack.
        let ackTimeout = max(interval * 3, .seconds(15))
        let metadata: Logger.Metadata = ["nameServer": "\(address)"]
        do {
            try await client.registerBroker(requests: { writer in
                var sent = self.registration()
                try await writer.write(Rocketmq_Namesrv_V1_RegisterBrokerRequest(content: .registration(sent.message)))
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        while !Task.isCancelled {
                            try? await Task.sleep(for: interval)
                            waker.yield()
                        }
                    }
                    // Ends when the task is cancelled, the response side finished the waker, or
                    // the registrar withdrew (ending the request stream unregisters the broker).
                    for await _ in wakeups {
                        if self.isWithdrawn { break }
                        if session.silentFor > ackTimeout {
                            throw RPCError(code: .deadlineExceeded, message: "no acknowledgement from NameServer \(address) for \(ackTimeout)")
                        }
                        let current = self.registration()
                        try await writer.write(Self.update(from: sent, to: current))
                        sent = current
                    }
                    group.cancelAll()
                }
            }, handle: { acks in
                defer { waker.finish() }
                for try await ack in acks {
                    if session.acknowledge() {
                        self.state.withLock { _ = $0.acknowledgedBy.insert(address) }
                        self.logger.info("registered with NameServer", metadata: metadata)
                    } else if ack.registered {
                        self.logger.notice("NameServer registered this broker again (it had expired or been removed)", metadata: metadata)
                    }
                }
            })
            if !Task.isCancelled && !isWithdrawn {
                logger.warning("NameServer ended the registration stream; reconnecting", metadata: metadata)
            }
        } catch {
            if let refusal = error as? RPCError, refusal.code == .failedPrecondition, !Task.isCancelled {
                logger.error("NameServer refused the registration: withdrawing from every NameServer", metadata: metadata.merging(["error": "\(refusal.message)"]) { $1 })
                withdraw()
                onRefused?(refusal)
            } else if !Task.isCancelled {
                logger.log(
                    level: failures == 0 || session.everAcknowledged ? .warning : .debug,
                    "registration stream failed; reconnecting",
                    metadata: metadata.merging(["error": "\(error)", "failures": "\(failures + 1)"]) { $1 }
                )
            }
        }
        return session.everAcknowledged
    }

    /// The next message after `sent`: a heartbeat (with topics if they changed), or a full
    /// registration when anything but the topics changed.
    static func update(from sent: BrokerRegistration, to current: BrokerRegistration) -> Rocketmq_Namesrv_V1_RegisterBrokerRequest {
        var sameBroker = current
        sameBroker.topics = sent.topics
        guard sameBroker == sent else { return Rocketmq_Namesrv_V1_RegisterBrokerRequest(content: .registration(current.message)) }
        let topics = current.topics == sent.topics ? nil : Rocketmq_Namesrv_V1_TopicList(topics: current.topics.map(\.message))
        return Rocketmq_Namesrv_V1_RegisterBrokerRequest(content: .heartbeat(Rocketmq_Namesrv_V1_BrokerHeartbeat(topics: topics)))
    }

    /// Acknowledgement bookkeeping shared by one stream's request and response sides.
    private final class StreamState: Sendable {
        private struct Acks {
            var last = ContinuousClock.now
            var count = 0
        }

        private let acks = Mutex(Acks())

        /// Records an ack; `true` for the stream's first.
        func acknowledge() -> Bool {
            acks.withLock { acks in
                acks.last = .now
                acks.count += 1
                return acks.count == 1
            }
        }

        /// Time since the last ack (or since the stream started).
        var silentFor: Duration { ContinuousClock.now - acks.withLock { $0.last } }

        var everAcknowledged: Bool { acks.withLock { $0.count > 0 } }
    }
}
