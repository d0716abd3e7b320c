import Foundation
import Logging
import RocketMQAPI
import Synchronization

/// Automatic failover for one broker group, through etcd (the coordination engine; no consensus
/// of our own). The master holds the key `/rocketmq/<cluster>/<broker name>/master` (value: its
/// client address) attached to a lease it keeps alive. Every member polls the key:
///
/// - absent (the master's lease expired: it died or lost etcd): the member creates it with its own
///   lease, in one transaction that succeeds for one member only, and becomes the master. Every
///   member publishes the end of its log under `.../members/<id>` (on its lease); a member
///   campaigns only when no live member's log goes further, after a round for all to publish,
///   and on a tie a slave waits `(member id - 1) × 300 ms`, so the lowest id is preferred;
/// - held by another address: the member follows that master as a slave;
/// - held by this broker's address under an older lease (a previous run): it is deleted, then
///   campaigned for.
///
/// Fencing: a master stops taking writes once it cannot show a lease that etcd still honours, that
/// is one second before the lease, as last renewed, would run out (renewals count from when their
/// request left, so etcd's own expiry is never earlier). So two masters never take writes at once,
/// whatever etcd, the network or a paused process do.
final class MasterElection: Sendable {
    private let broker: Broker
    private let etcd: EtcdClient
    private let role: BrokerRole
    private let memberId: Int32
    private let ttl: Duration
    let key: String
    /// Where each member publishes the end of its log, attached to its lease.
    private let membersPrefix: String

    private struct State {
        var lease: Int64 = 0
        /// When our lease runs out, as far as we can prove.
        var expiry: ContinuousClock.Instant?
        var holder = ""
        var lastError = ""
    }

    private let state = Mutex(State())

    init(broker: Broker, etcd: EtcdClient, role: BrokerRole, memberId: Int32, ttl: Duration) {
        self.broker = broker
        self.etcd = etcd
        self.role = role
        self.memberId = memberId
        self.ttl = ttl
        let configuration = broker.configuration
        key = "/rocketmq/\(configuration.clusterName)/\(configuration.brokerName)/master"
        membersPrefix = "/rocketmq/\(configuration.clusterName)/\(configuration.brokerName)/members/"
    }

    /// For `haStatus`: who holds the master key, as last read.
    var summary: String {
        let s = state.withLock { $0 }
        let holder = s.holder.isEmpty ? "vacant" : s.holder
        return "etcd \(etcd.endpoints.joined(separator: ",")): master \(holder)" + (s.lastError.isEmpty ? "" : "; last error: \(s.lastError)")
    }

    /// Time between two reads of the key (and fencing checks).
    private var pollInterval: Duration { min(.milliseconds(500), ttl / 8) }
    private var margin: Duration { max(.seconds(1), pollInterval * 2) }

    func run() async {
        var failures = 0
        while !Task.isCancelled {
            do {
                let asked = ContinuousClock.now  // the lease runs from no earlier than this
                let (lease, granted) = try await etcd.grantLease(ttl: max(2, ttl.components.seconds))
                state.withLock {
                    $0.lease = lease
                    $0.expiry = asked + .seconds(granted)
                }
                failures = 0
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        try await self.etcd.keepAlive(lease, every: .seconds(granted) / 3) { sent, seconds in
                            self.state.withLock { $0.expiry = sent + .seconds(seconds) }
                        }
                    }
                    group.addTask { try await self.campaign(lease: lease) }
                    group.addTask { try await self.watchExpiry() }
                    try await group.next()
                    group.cancelAll()
                }
            } catch {
                if !Task.isCancelled {
                    failures += 1
                    state.withLock { $0.lastError = "\(error)" }
                    broker.logger.log(level: failures == 1 ? .warning : .debug, "etcd election interrupted", metadata: ["error": "\(error)"])
                }
                if case ElectionError.couldNotTakeOver = error {
                    // This member holds the key but cannot serve as master: give it up, and
                    // stand back long enough for another member to take it.
                    let lease = state.withLock { $0.lease }
                    await etcd.revokeLease(lease)
                    await fenceIfMaster(reason: "taking over failed")
                    try? await Task.sleep(for: ttl * 2)
                    continue
                }
            }
            await fenceIfMaster(reason: "the etcd lease is lost")
            guard !Task.isCancelled else { break }
            try? await Task.sleep(for: min(.milliseconds(250) * (1 << min(failures, 3)), .seconds(2)))
        }
        await resign()
    }

    /// Reads the key and acts on it until the lease is lost (throws) or the task is cancelled.
    private func campaign(lease: Int64) async throws {
        let me = broker.routeAddress
        var published: Int64 = -1
        var vacantSince: ContinuousClock.Instant?
        while !Task.isCancelled {
            // Every member says how far its log goes, so that a vacancy goes to the most complete copy.
            let end = broker.store.commitLogMaxOffset
            if end != published {
                try await etcd.put(membersPrefix + String(memberId), value: String(end), lease: lease)
                published = end
            }
            let current = try await etcd.get(key)
            let holder = current.map { String(decoding: $0.value, as: UTF8.self) } ?? ""
            state.withLock {
                $0.holder = holder
                $0.lastError = ""
            }
            if current != nil { vacantSince = nil }
            if let current {
                if current.lease == lease {
                    if broker.isSlave { try await elected() }
                } else if holder == me {
                    // Our own key from a run that ended before its lease did.
                    try await etcd.delete(key, ifLease: current.lease)
                    continue
                } else {
                    await broker.becomeSlave(of: holder, memberId: memberId)
                }
            } else {
                // Vacant: give every member a round to publish its final log end, then campaign
                // only if no live member holds more of the log; on a tie lower ids go first.
                let since = vacantSince ?? .now
                vacantSince = since
                if ContinuousClock.now - since < pollInterval * 2 {
                    try await Task.sleep(for: pollInterval)
                    continue
                }
                let others = try await etcd.list(prefix: membersPrefix)
                    .filter { $0.key != membersPrefix + String(memberId) }
                    .compactMap { Int64($0.value) }
                if let best = others.max(), best > end {
                    state.withLock { $0.lastError = "waiting: another member's log goes further (\(best) > \(end))" }
                    try await Task.sleep(for: pollInterval)
                    continue
                }
                if broker.isSlave, memberId > 1 {
                    try await Task.sleep(for: .milliseconds(300) * Int(memberId - 1))
                }
                let (created, _) = try await etcd.createIfAbsent(key, value: me, lease: lease)
                if created {
                    state.withLock { $0.holder = me }
                    try await elected()
                    continue
                }
            }
            try await Task.sleep(for: pollInterval)
        }
    }

    /// `margin` before the lease, as last renewed, runs out: fences a master at once (the store
    /// refuses its own appends from then on, whatever the other tasks are waiting for: a hung
    /// etcd call, a slow reload), then throws to end this lease's round.
    private func watchExpiry() async throws {
        while !Task.isCancelled {
            guard let expiry = state.withLock({ $0.expiry }) else { return }
            let deadline = expiry - margin
            if ContinuousClock.now >= deadline {
                broker.fenceNow()
                throw BrokerError.storage("the etcd lease was not renewed in time")
            }
            try await Task.sleep(until: min(deadline, .now + pollInterval), clock: .continuous)
        }
    }

    private func elected() async throws {
        guard broker.isSlave else { return }
        broker.logger.notice("elected master through etcd", metadata: ["key": "\(key)"])
        do {
            try await broker.becomeMaster(role: role, persist: false)
        } catch {
            broker.logger.error("elected, but cannot take over as master", metadata: ["error": "\(error)"])
            throw ElectionError.couldNotTakeOver
        }
    }

    /// Gives the key up at once (graceful shutdown, and the end of `run`): a master stops writing
    /// first, then the lease is revoked rather than left to its TTL, so a slave takes over at once.
    func resign() async {
        await fenceIfMaster(reason: "shutting down")
        let lease = state.withLock { $0.lease }
        if lease != 0 { await etcd.revokeLease(lease) }
    }

    enum ElectionError: Error {
        case couldNotTakeOver
    }

    private func fenceIfMaster(reason: String) async {
        guard !broker.isSlave else { return }
        broker.logger.warning("fencing: \(reason); this master stops taking writes")
        state.withLock { $0.holder = "" }
        await broker.becomeSlave(of: nil, memberId: memberId)
    }
}
