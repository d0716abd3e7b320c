import Synchronization

/// Wakes long-polling receivers when a topic gets a new message.
///
/// A pop receiver (`ReceiveMessage`) takes from every queue of its topic, so one arrival needs
/// one waiting receiver of each consumer group, not all of them: `signal` wakes the
/// longest-waiting pop receiver of each group, as RocketMQ's pop long polling does. (Waking every
/// receiver made each arrival cost every idle receiver a scan of every queue.) A pull receiver
/// reads one queue, so it is woken by any arrival on that queue.
///
/// No arrival is missed between a receiver's scan and its wait: the receiver takes `epoch(of:)`
/// before it scans and passes it to `wait`, which returns at once if anything arrived since.
///
/// Thread-safe; each waiter is resumed exactly once (by a signal or its timeout), because
/// whoever removes it from the table under the lock is the one that resumes it.
final class ArrivalSignal: Sendable {
    /// What a waiter reads: any queue on behalf of a group (pop), or one queue (pull).
    enum Interest: Equatable, Sendable {
        case group(String)
        case queue(Int32)
    }

    private struct Waiter {
        var id: UInt64
        var interest: Interest
        var continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        /// Per topic, oldest first.
        var waiters: [String: [Waiter]] = [:]
        /// Per topic, how many signals so far.
        var epochs: [String: UInt64] = [:]
        var nextId: UInt64 = 0
    }

    private let state = Mutex(State())

    /// The topic's arrival count; pass it to `wait` to learn of arrivals after this point.
    func epoch(of topic: String) -> UInt64 {
        state.withLock { $0.epochs[topic] ?? 0 }
    }

    /// A message arrived on `topic` (on `queueId`, or on any queue when nil): wakes the
    /// longest-waiting pop receiver of each group and every pull receiver of that queue.
    func signal(_ topic: String, queueId: Int32? = nil) {
        let woken = state.withLock { state -> [CheckedContinuation<Bool, Never>] in
            state.epochs[topic, default: 0] &+= 1
            guard var waiters = state.waiters[topic] else { return [] }
            var woken: [CheckedContinuation<Bool, Never>] = []
            var groupsWoken: [String] = []
            waiters.removeAll { waiter in
                switch waiter.interest {
                case .queue(let id):
                    guard queueId == nil || queueId == id else { return false }
                case .group(let group):
                    guard !groupsWoken.contains(group) else { return false }
                    groupsWoken.append(group)
                }
                woken.append(waiter.continuation)
                return true
            }
            state.waiters[topic] = waiters.isEmpty ? nil : waiters
            return woken
        }
        for continuation in woken { continuation.resume(returning: true) }
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
                let registered = !cancelled && state.withLock { state -> Bool in
                    guard (state.epochs[topic] ?? 0) == epoch else { return false }
                    state.waiters[topic, default: []].append(Waiter(id: id, interest: interest, continuation: continuation))
                    return true
                }
                guard registered else {
                    continuation.resume(returning: !cancelled)
                    return
                }
                Task {
                    try? await Task.sleep(for: timeout)
                    self.expire(topic, id)
                }
            }
        } onCancel: {
            self.expire(topic, id)
        }
    }

    /// How many receivers wait on `topic` (tests, admin views).
    func waiterCount(_ topic: String) -> Int {
        state.withLock { $0.waiters[topic]?.count ?? 0 }
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
