import Synchronization

/// Wakes long-polling receivers when a topic gets a new message.
///
/// A pop receiver (`ReceiveMessage`) takes from every queue of its topic, so one arrival needs
/// one waiting receiver of each consumer group, not all of them: `signal` wakes the
/// longest-waiting pop receiver of each group, as RocketMQ's pop long polling does. (Waking every
/// receiver made each arrival cost every idle receiver a scan of every queue.) A pull receiver
/// reads one queue, so it is woken by any arrival on that queue.
///
/// Arrivals also coalesce: while a pop receiver woken for a group has not begun its scan yet,
/// further arrivals on the topic wake no other receiver of that group, since that scan will see
/// them. (Waking one receiver per arrival made ~5 of every 6 scans find nothing at 13k msgs/s
/// over 8 receivers: the first woken took the whole tick's messages.) A woken receiver that has
/// not begun its scan within `coalesceWindow` no longer holds the others back. A receive that
/// fills its batch may leave messages behind and calls `handOn` to wake the next receiver.
///
/// No arrival is missed between a receiver's scan and its wait: the receiver calls `beginPoll`
/// before it scans and passes the epoch it returns to `wait`, which returns at once if anything
/// arrived since; `endPoll` ends its interest. While nobody polls, `signal` (every send) costs one
/// atomic operation: no lock, no hash of the topic.
///
/// Timeouts are kept by one sweeper task that runs while anyone waits and ends waits whose
/// deadline passed every `sweepInterval` (as RocketMQ's long-polling service does), instead
/// of a sleeping task and a timer per wait: at thousands of waits a second, those cost more
/// than the receives themselves, and each stayed asleep for its whole timeout.
///
/// Thread-safe; each waiter is resumed exactly once (by a signal, the sweeper or
/// cancellation), because whoever removes it from the table under the lock resumes it.
final class ArrivalSignal: Sendable {
    /// How late a wait may end after its timeout.
    static let sweepInterval: Duration = .milliseconds(10)
    /// How long a woken pop receiver that has not begun its scan keeps arrivals from waking
    /// another receiver of its group (10 ms; tests choose their own).
    let coalesceWindow: Duration

    init(coalesceWindow: Duration = .milliseconds(10)) {
        self.coalesceWindow = coalesceWindow
    }

    /// What a waiter reads: any queue on behalf of a group (pop), or one queue (pull).
    enum Interest: Equatable, Sendable {
        case group(String)
        case queue(Int32)
    }

    private struct Waiter {
        var id: UInt64
        var interest: Interest
        var deadline: ContinuousClock.Instant
        var continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        /// Per topic, oldest first.
        var waiters: [String: [Waiter]] = [:]
        /// Per topic, how many signals so far.
        var epochs: [String: UInt64] = [:]
        /// Per topic, the groups with a pop receiver woken that has not begun its scan, and when
        /// it was woken.
        var woken: [String: [String: ContinuousClock.Instant]] = [:]
        var nextId: UInt64 = 0
        /// Whether the sweeper task runs (it stops when nobody waits).
        var sweeping = false
    }

    private let state = Mutex(State())
    /// Receivers between `beginPoll` and `endPoll`.
    private let pollers = Atomic<Int>(0)

    /// Starts a receiver's poll of `topic`; call it before scanning for messages. Returns the
    /// topic's arrival epoch, for `wait`. Every `beginPoll` needs an `endPoll`. A pop receiver's
    /// scan covers the arrivals that coalesced while its group had a receiver woken, so arrivals
    /// after this wake the group's next receiver again.
    func beginPoll(_ topic: String, as interest: Interest) -> UInt64 {
        // Counted before the scan: a signal that finds no pollers is ordered before this
        // increment, so the message it announced is already visible to the scan.
        pollers.wrappingAdd(1, ordering: .sequentiallyConsistent)
        return state.withLock { state in
            if case .group(let group) = interest, state.woken[topic]?.removeValue(forKey: group) != nil, state.woken[topic]?.isEmpty == true {
                state.woken[topic] = nil
            }
            return state.epochs[topic] ?? 0
        }
    }

    /// Ends a poll begun with `beginPoll` (after its wait, or when it found messages).
    func endPoll() {
        pollers.wrappingSubtract(1, ordering: .sequentiallyConsistent)
    }

    /// A message arrived on `topic` (on `queueId`, or on any queue when nil): wakes the
    /// longest-waiting pop receiver of each group that has none woken yet, and every pull
    /// receiver of that queue.
    func signal(_ topic: String, queueId: Int32? = nil) {
        // A read-modify-write, not a load: it orders the append that precedes it before any
        // later `beginPoll`, so a poller that this misses still sees the message in its scan.
        guard pollers.wrappingAdd(0, ordering: .sequentiallyConsistent).oldValue > 0 else { return }
        announce(topic) { interest in
            switch interest {
            case .queue(let id): queueId == nil || queueId == id
            case .group: true
            }
        }
    }

    /// A pop receive of `group` filled its batch and may have left messages on `topic`: wakes
    /// the group's next waiting receiver, unless one is woken already.
    func handOn(_ topic: String, group: String) {
        announce(topic) { $0 == .group(group) }
    }

    /// Counts a signal of `topic` (so that pollers between their scan and their wait rescan)
    /// and wakes the waiters `wake` picks among those `concerned`.
    private func announce(_ topic: String, to concerned: (Interest) -> Bool) {
        let woken = state.withLock { state in
            state.epochs[topic, default: 0] &+= 1
            return wake(&state, topic: topic, concerned: concerned)
        }
        for continuation in woken { continuation.resume(returning: true) }
    }

    /// Takes out the waiters of `topic` that an arrival wakes (among those `concerned`): every
    /// pull waiter, and the longest-waiting pop waiter of each group without a woken receiver
    /// that is still to begin its scan. Under the lock; the caller resumes them.
    private func wake(
        _ state: inout State, topic: String, concerned: (Interest) -> Bool
    ) -> [CheckedContinuation<Bool, Never>] {
        guard var waiters = state.waiters[topic] else { return [] }
        var pending = state.woken[topic] ?? [:]
        var now: ContinuousClock.Instant?
        var woken: [CheckedContinuation<Bool, Never>] = []
        waiters.removeAll { waiter in
            guard concerned(waiter.interest) else { return false }
            if case .group(let group) = waiter.interest {
                let time = now ?? .now
                now = time
                if let since = pending[group], time - since < coalesceWindow { return false }
                pending[group] = time
            }
            woken.append(waiter.continuation)
            return true
        }
        state.waiters[topic] = waiters.isEmpty ? nil : waiters
        state.woken[topic] = pending.isEmpty ? nil : pending
        return woken
    }

    /// Waits until a signal for `topic` wakes this waiter (true), or `timeout` passes or the task
    /// is cancelled (false). Returns true at once when the topic was signalled since `epoch`.
    func wait(for topic: String, as interest: Interest, since epoch: UInt64, timeout: Duration) async -> Bool {
        guard timeout > .zero else { return false }
        let id = state.withLock { state -> UInt64 in
            state.nextId += 1
            return state.nextId
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                // Cancelled before registering: `onCancel` already ran and found nothing to expire.
                let cancelled = Task.isCancelled
                let deadline = ContinuousClock.now + timeout
                var startSweeper = false
                let registered = !cancelled && state.withLock { state -> Bool in
                    guard (state.epochs[topic] ?? 0) == epoch else { return false }
                    state.waiters[topic, default: []].append(Waiter(id: id, interest: interest, deadline: deadline, continuation: continuation))
                    if !state.sweeping {
                        state.sweeping = true
                        startSweeper = true
                    }
                    return true
                }
                guard registered else {
                    continuation.resume(returning: !cancelled)
                    return
                }
                if startSweeper { Task { await self.sweep() } }
            }
        } onCancel: {
            self.expire(topic, id)
        }
    }

    /// How many receivers wait on `topic` (for tests).
    func waiterCount(_ topic: String) -> Int {
        state.withLock { $0.waiters[topic]?.count ?? 0 }
    }

    /// Ends every wait whose deadline passed, each `sweepInterval`, until nobody waits.
    private func sweep() async {
        while true {
            try? await Task.sleep(for: Self.sweepInterval)
            let now = ContinuousClock.now
            let (expired, idle) = state.withLock { state -> ([CheckedContinuation<Bool, Never>], Bool) in
                var expired: [CheckedContinuation<Bool, Never>] = []
                for (topic, waiters) in state.waiters where waiters.contains(where: { $0.deadline <= now }) {
                    var kept = waiters
                    kept.removeAll { waiter in
                        guard waiter.deadline <= now else { return false }
                        expired.append(waiter.continuation)
                        return true
                    }
                    state.waiters[topic] = kept.isEmpty ? nil : kept
                }
                // Woken receivers that never began their scan hold nobody back any more.
                if !state.woken.isEmpty {
                    state.woken = state.woken.compactMapValues { groups in
                        let live = groups.filter { now - $0.value < self.coalesceWindow }
                        return live.isEmpty ? nil : live
                    }
                }
                if state.waiters.isEmpty { state.sweeping = false }
                return (expired, !state.sweeping)
            }
            for continuation in expired { continuation.resume(returning: false) }
            if idle { return }
        }
    }

    private func expire(_ topic: String, _ id: UInt64) {
        let continuation = state.withLock { state -> CheckedContinuation<Bool, Never>? in
            guard var waiters = state.waiters[topic], let index = waiters.firstIndex(where: { $0.id == id }) else { return nil }
            let continuation = waiters.remove(at: index).continuation
            state.waiters[topic] = waiters.isEmpty ? nil : waiters
            return continuation
        }
        continuation?.resume(returning: false)
    }
}
