import Atomics
import Synchronization

/// Long-poll wake-ups: consumers wait for a queue to grow past an offset; dispatch wakes them.
///
/// A waiter checks the queue's max offset under the same lock `notify` takes, so a message
/// dispatched between the check and the registration is never missed.
final class QueueNotifier: Sendable {
    private struct Waiter: Sendable {
        var continuation: CheckedContinuation<Bool, Never>
        var timer: Task<Void, Never>?
    }
    private struct State: Sendable {
        var next: UInt64 = 0
        var waiters: [QueueID: [UInt64: Waiter]] = [:]
    }
    private let state = Mutex(State())
    private let waiting = ManagedAtomic<Int>(0)

    /// Suspends until `notify(queue)` runs while `isReady()` is false, `isReady()` holds,
    /// or `timeout` passes. Returns whether `isReady()` held when it returned.
    func wait(for queue: QueueID, timeout: Duration, isReady: @escaping @Sendable () -> Bool) async -> Bool {
        if isReady() { return true }
        let id: UInt64 = state.withLock { s in s.next += 1; return s.next }
        let woken: Bool = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let registered: Bool = state.withLock { s in
                    waiting.wrappingIncrement(ordering: .sequentiallyConsistent)
                    if isReady() {
                        waiting.wrappingDecrement(ordering: .sequentiallyConsistent)
                        return false
                    }
                    s.waiters[queue, default: [:]][id] = Waiter(continuation: continuation, timer: nil)
                    return true
                }
                guard registered else { continuation.resume(returning: true); return }
                let timer = Task { [self] in
                    try? await Task.sleep(for: timeout)
                    self.finish(queue, id, woken: false)
                }
                let attached: Bool = state.withLock { s in
                    if s.waiters[queue]?[id] != nil { s.waiters[queue]?[id]?.timer = timer; return true }
                    return false
                }
                if !attached { timer.cancel() }
            }
        } onCancel: {
            self.finish(queue, id, woken: false)
        }
        return woken || isReady()
    }

    private func finish(_ queue: QueueID, _ id: UInt64, woken: Bool) {
        let w: Waiter? = state.withLock { s in
            let w = s.waiters[queue]?.removeValue(forKey: id)
            if s.waiters[queue]?.isEmpty == true { s.waiters[queue] = nil }
            return w
        }
        guard let w else { return }
        waiting.wrappingDecrement(ordering: .relaxed)
        w.timer?.cancel()
        w.continuation.resume(returning: woken)
    }

    /// Wakes every waiter of `queue`. Cheap when nobody waits.
    func notify(_ queue: QueueID) {
        guard waiting.load(ordering: .sequentiallyConsistent) > 0 else { return }
        let ws: [Waiter] = state.withLock { s in
            guard let m = s.waiters.removeValue(forKey: queue) else { return [] }
            return Array(m.values)
        }
        guard !ws.isEmpty else { return }
        waiting.wrappingDecrement(by: ws.count, ordering: .relaxed)
        for w in ws {
            w.timer?.cancel()
            w.continuation.resume(returning: true)
        }
    }

    /// Wakes everyone (shutdown).
    func notifyAll() {
        let ws: [Waiter] = state.withLock { s in
            let all = s.waiters.values.flatMap { $0.values }
            s.waiters.removeAll()
            return all
        }
        waiting.wrappingDecrement(by: ws.count, ordering: .relaxed)
        for w in ws {
            w.timer?.cancel()
            w.continuation.resume(returning: false)
        }
    }
}
