import Synchronization

/// Counts printed responses across the invoker's callbacks.
final class ResponseCounter: Sendable {
    private let count = Mutex(0)

    func next() -> Int {
        count.withLock { value in
            value += 1
            return value
        }
    }
}
