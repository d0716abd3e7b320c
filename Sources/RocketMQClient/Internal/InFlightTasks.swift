import Foundation
import Synchronization

/// Fire-and-continue work that shutdown waits for. Registration is synchronous (a lock, not an
/// actor) so that work started just before `shutdown()` is never missed.
final class InFlightTasks: Sendable {
    private struct State {
        var closed = false
        var tasks: [UUID: Task<Void, Never>] = [:]
    }

    private let state = Mutex(State())

    /// Starts `operation` in a task and registers it; throws once ``drain()`` began.
    func run(_ operation: @escaping @Sendable () async -> Void) throws(RocketMQError) -> Task<Void, Never> {
        let id = UUID()
        return try state.withLock { (state: inout State) throws(RocketMQError) -> Task<Void, Never> in
            guard !state.closed else { throw .shutDown }
            let task = Task {
                await operation()
                self.finished(id)
            }
            state.tasks[id] = task
            return task
        }
    }

    /// Refuses new work and waits for everything registered.
    func drain() async {
        let tasks = state.withLock { state in
            state.closed = true
            return Array(state.tasks.values)
        }
        for task in tasks { await task.value }
    }

    private func finished(_ id: UUID) {
        _ = state.withLock { $0.tasks.removeValue(forKey: id) }
    }
}
