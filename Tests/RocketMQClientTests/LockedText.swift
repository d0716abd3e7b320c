import Synchronization

/// Text appended from a pipe's reader thread and read by the test.
final class LockedText: Sendable {
    private let text = Mutex("")

    func append(_ more: String) { text.withLock { $0 += more } }
    var value: String { text.withLock { $0 } }
}
