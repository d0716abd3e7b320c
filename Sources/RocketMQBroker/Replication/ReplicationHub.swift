import Atomics
import Foundation
import RocketMQStore
import Synchronization

/// A master's side of replication: which slaves follow its log and how far each has
/// acknowledged, a doorbell per slave stream rung when the log grows, and the sends of a sync
/// master waiting for an acknowledgement that covers them.
///
/// Thread-safe. `logGrew()` runs on every append while a slave follows: it only rings doorbells.
final class ReplicationHub: Sendable {
    /// One slave as the master sees it.
    struct Replica: Sendable {
        var address: String
        var brokerId: Int64
        var acknowledged: Int64
        var connectedAt: Date
        var lastAcknowledgedAt: Date?
    }

    private struct Waiter {
        var end: Int64
        var deadline: ContinuousClock.Instant
        var completion: @Sendable (BrokerError?) -> Void
    }

    private struct State {
        var replicas: [Int: Replica] = [:]
        /// Everything below this is on some slave (the furthest acknowledgement).
        var covered: Int64 { replicas.values.map(\.acknowledged).max() ?? 0 }
        var doorbells: [Int: AsyncStream<Void>.Continuation] = [:]
        var nextId = 0
        var waiters: [Waiter] = []
        var sweeping = false
    }

    private let state = Mutex(State())
    private let following = ManagedAtomic<Bool>(false)
    /// The store whose growth rings the doorbells: observed only while a slave follows, so a
    /// broker without slaves pays one relaxed load per append.
    private let store = Mutex<MessageStore?>(nil)

    func bind(_ store: MessageStore) {
        self.store.withLock { $0 = store }
    }

    /// A slave's stream starts: returns its id and the doorbell rung when the log grows.
    func attach(address: String, brokerId: Int64, offset: Int64) -> (id: Int, doorbell: AsyncStream<Void>) {
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id = state.withLock { state in
            defer { state.nextId += 1 }
            if state.replicas.isEmpty {
                following.store(true, ordering: .sequentiallyConsistent)
                store.withLock { $0 }?.observeLogGrowth { [weak self] _ in self?.logGrew() }
            }
            state.replicas[state.nextId] = Replica(address: address, brokerId: brokerId, acknowledged: offset, connectedAt: Date())
            state.doorbells[state.nextId] = continuation
            return state.nextId
        }
        acknowledge(id, offset: offset)
        return (id, stream)
    }

    /// A slave's stream ended.
    func detach(_ id: Int) {
        let doorbell = state.withLock { state in
            state.replicas[id] = nil
            if state.replicas.isEmpty {
                following.store(false, ordering: .sequentiallyConsistent)
                store.withLock { $0 }?.observeLogGrowth(nil)
            }
            return state.doorbells.removeValue(forKey: id)
        }
        doorbell?.finish()
    }

    /// The slave `id` has written everything below `offset`: completes the sends it covers.
    func acknowledge(_ id: Int, offset: Int64) {
        let done: [Waiter] = state.withLock { state in
            guard var replica = state.replicas[id] else { return [] }
            replica.acknowledged = max(replica.acknowledged, offset)
            replica.lastAcknowledgedAt = Date()
            state.replicas[id] = replica
            let covered = state.covered
            let done = state.waiters.filter { $0.end <= covered }
            if !done.isEmpty { state.waiters.removeAll { $0.end <= covered } }
            return done
        }
        for waiter in done { waiter.completion(nil) }
    }

    /// Wakes one slave stream (its keepalive).
    func ring(_ id: Int) {
        _ = state.withLock { $0.doorbells[id] }?.yield()
    }

    /// The log grew: wakes every slave stream (cheap when none follows).
    func logGrew() {
        guard following.load(ordering: .relaxed) else { return }
        let doorbells = state.withLock { Array($0.doorbells.values) }
        for doorbell in doorbells { doorbell.yield() }
    }

    /// Calls `completion` once a slave has acknowledged everything below `end` (with nil), or
    /// with the error that ended the wait: `.noReplica` at once when no slave follows,
    /// `.replicationTimeout` after `timeout`. On the acknowledging thread or a timer's.
    func whenReplicated(upTo end: Int64, timeout: Duration, _ completion: @escaping @Sendable (BrokerError?) -> Void) {
        enum Outcome { case done, none, wait(startSweeper: Bool) }
        let outcome: Outcome = state.withLock { state in
            guard !state.replicas.isEmpty else { return .none }
            if state.covered >= end { return .done }
            state.waiters.append(Waiter(end: end, deadline: .now + timeout, completion: completion))
            defer { state.sweeping = true }
            return .wait(startSweeper: !state.sweeping)
        }
        switch outcome {
        case .done: completion(nil)
        case .none: completion(.noReplica)
        case .wait(let startSweeper): if startSweeper { startSweeping() }
        }
    }

    /// `whenReplicated` for an async caller.
    func waitForReplica(upTo end: Int64, timeout: Duration) async throws(BrokerError) {
        let error: BrokerError? = await withCheckedContinuation { continuation in
            whenReplicated(upTo: end, timeout: timeout) { continuation.resume(returning: $0) }
        }
        if let error { throw error }
    }

    /// Fails waiters past their deadline, every 20 ms while any wait.
    private func startSweeping() {
        Task.detached { [self] in
            while true {
                try? await Task.sleep(for: .milliseconds(20))
                let now = ContinuousClock.now
                let (expired, more): ([Waiter], Bool) = state.withLock { state in
                    let expired = state.waiters.filter { $0.deadline <= now }
                    if !expired.isEmpty { state.waiters.removeAll { $0.deadline <= now } }
                    if state.waiters.isEmpty { state.sweeping = false }
                    return (expired, state.sweeping)
                }
                for waiter in expired { waiter.completion(.replicationTimeout) }
                if !more { return }
            }
        }
    }

    /// The slaves following now, oldest connection first.
    var replicas: [Replica] {
        state.withLock { $0.replicas.sorted { $0.key < $1.key }.map(\.value) }
    }

    /// Ends every slave stream (promotion to slave never happens; shutdown does).
    func closeAll() {
        let doorbells = state.withLock { Array($0.doorbells.values) }
        for doorbell in doorbells { doorbell.finish() }
    }
}
