import Foundation
import Logging
import RocketMQAPI
import Synchronization

/// Automatic failover for one broker group, through etcd (the coordination engine; no consensus
/// of our own). The master holds the key `/rocketmq/<cluster>/<broker name>/master` (value: its
/// client address) attached to a lease it keeps alive. Every member polls the key:
///
/// - absent (the master's lease expired: it died or lost etcd): the member creates it with its own
///   lease, in one transaction that succeeds for one member only, and becomes the master; a slave
///   waits `(member id - 1) × 300 ms` first, so that the first slave is preferred;
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
                let (lease, granted) = try await etcd.grantLease(ttl: max(2, ttl.components.seconds))
                state.withLock {
                    $0.lease = lease
                    $0.expiry = .now + .seconds(granted)
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
            }
            await fenceIfMaster(reason: "the etcd lease is lost")
            guard !Task.isCancelled else { break }
            try? await Task.sleep(for: min(.milliseconds(250) * (1 << min(failures, 3)), .seconds(2)))
        }
        // Shutting down: a master stops writing, then gives its key up now rather than after the
        // lease's TTL, so a slave takes over at once.
        await fenceIfMaster(reason: "shutting down")
        let lease = state.withLock { $0.lease }
        if lease != 0 { await etcd.revokeLease(lease) }
    }

    /// Reads the key and acts on it until the lease is lost (throws) or the task is cancelled.
    private func campaign(lease: Int64) async throws {
        let me = broker.routeAddress
        while !Task.isCancelled {
            let current = try await etcd.get(key)
            let holder = current.map { String(decoding: $0.value, as: UTF8.self) } ?? ""
            state.withLock {
                $0.holder = holder
                $0.lastError = ""
            }
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

    /// Throws `margin` before the lease, as last renewed, runs out: whatever the other tasks are
    /// waiting for (a hung etcd call), a master is fenced in time.
    private func watchExpiry() async throws {
        while !Task.isCancelled {
            guard let expiry = state.withLock({ $0.expiry }) else { return }
            let deadline = expiry - margin
            if ContinuousClock.now >= deadline { throw BrokerError.storage("the etcd lease was not renewed in time") }
            try await Task.sleep(until: min(deadline, .now + pollInterval), clock: .continuous)
        }
    }

    private func elected() async throws {
        guard broker.isSlave else { return }
        broker.logger.notice("elected master through etcd", metadata: ["key": "\(key)"])
        try await broker.becomeMaster(role: role, persist: false)
    }

    private func fenceIfMaster(reason: String) async {
        guard !broker.isSlave else { return }
        broker.logger.warning("fencing: \(reason); this master stops taking writes")
        state.withLock { $0.holder = "" }
        await broker.becomeSlave(of: nil, memberId: memberId)
    }
}
