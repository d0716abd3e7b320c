import Synchronization

/// Thread-safe notes from server handlers that tests assert on.
final class Recorder: Sendable {
    private let state = Mutex<[String: Int]>([:])

    func bump(_ key: String, by n: Int = 1) {
        state.withLock { $0[key, default: 0] += n }
    }

    func count(_ key: String) -> Int {
        state.withLock { $0[key] ?? 0 }
    }
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes; returns whether it held.
func eventually(timeout: Duration = .seconds(5), _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}
