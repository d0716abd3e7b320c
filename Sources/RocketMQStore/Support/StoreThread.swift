import Foundation

/// A dedicated thread for the store's blocking work (`fdatasync`, timed waits), which must never
/// hold a cooperative-pool thread.
///
/// Named from inside the thread, so `top -H`, `perf` and debuggers show what each one is:
/// Foundation on Linux passes a name set before `start()` to nobody, and the new thread keeps
/// the name of the thread that created it (often one of the concurrency pool's).
enum StoreThread {
    /// Starts `body` on a new thread called `name` (Linux keeps the first 15 bytes).
    static func start(named name: String, _ body: @escaping @Sendable () -> Void) {
        let thread = Thread {
            Thread.current.name = name
            body()
        }
        thread.start()
    }
}
