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
    /// How many waiters the table holds, so that a signal with nobody waiting (every send
    /// without a long poll) skips the lock and the topic's hash. Changed under the lock.
    private let waiting = Atomic<Int>(0)

    /// Wakes every waiter of `topic`. A waiter that registers after this looked misses it, as
    /// it would had this taken the lock first.
    func signal(_ topic: String) {
        guard waiting.load(ordering: .sequentiallyConsistent) > 0 else { return }
        let woken = state.withLock { state in
            let woken = state.waiters.removeValue(forKey: topic) ?? [:]
            waiting.wrappingSubtract(woken.count, ordering: .sequentiallyConsistent)
            return woken
        }
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
                state.withLock { state in
                    state.waiters[topic, default: [:]][id] = continuation
                    waiting.wrappingAdd(1, ordering: .sequentiallyConsistent)
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

    private func expire(_ topic: String, _ id: UInt64) {
        let continuation = state.withLock { state in
            let continuation = state.waiters[topic]?.removeValue(forKey: id)
            if continuation != nil { waiting.wrappingSubtract(1, ordering: .sequentiallyConsistent) }
            return continuation
        }
        continuation?.resume(returning: false)
    }
}
