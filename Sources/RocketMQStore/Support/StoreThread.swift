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
            nameCurrentThread(name)
            body()
        }
        thread.start()
    }

    /// Names the calling thread for the kernel (`comm`) and for Foundation. The kernel's name is
    /// written to `/proc/thread-self/comm` directly: Foundation's setter passes the name on only
    /// once the starting thread has recorded the new thread's handle, which the new thread can
    /// outrun (a flusher once stayed unnamed in a test on a loaded machine), and Glibc's
    /// `pthread_setname_np` is a GNU extension Swift does not see.
    static func nameCurrentThread(_ name: String) {
        #if os(Linux)
        let fd = open("/proc/thread-self/comm", O_WRONLY)
        if fd >= 0 {
            let bytes = Array(name.utf8.prefix(15))
            _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
        }
        #endif
        Thread.current.name = name
    }
}
