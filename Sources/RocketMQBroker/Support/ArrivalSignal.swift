import Synchronization

/// Wakes long-polling receivers when a topic gets a new message.
///
/// Thread-safe; each waiter is resumed exactly once (by a signal or its timeout), because
/// whoever removes it from the table under the lock is the one that resumes it.
final class ArrivalSignal: Sendable {
    private struct State {
        var waiters: [String: [UInt64: CheckedContinuation<Bool, Never>]] = [:]
        var nextId: UInt64 = 0
    }

    private let state = Mutex(State())

    /// Wakes every waiter of `topic`.
    func signal(_ topic: String) {
        let woken = state.withLock { $0.waiters.removeValue(forKey: topic) ?? [:] }
        for continuation in woken.values { continuation.resume(returning: true) }
    }

    /// Waits until `topic` is signalled (true) or `timeout` passes or the task is cancelled (false).
    func wait(for topic: String, timeout: Duration) async -> Bool {
        guard timeout > .zero else { return false }
        let id = state.withLock { state -> UInt64 in
            state.nextId += 1
            return state.nextId
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                state.withLock { $0.waiters[topic, default: [:]][id] = continuation }
                Task {
                    try? await Task.sleep(for: timeout)
                    self.expire(topic, id)
                }
            }
        } onCancel: {
            self.expire(topic, id)
        }
    }

    private func expire(_ topic: String, _ id: UInt64) {
        let continuation = state.withLock { $0.waiters[topic]?.removeValue(forKey: id) }
        continuation?.resume(returning: false)
    }
}
