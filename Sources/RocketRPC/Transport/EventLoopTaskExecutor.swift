import NIOCore

/// Runs Swift tasks on a NIO event loop (a `TaskExecutor` for `Task(executorPreference:)`).
///
/// Server handlers started with this preference run on their connection's event loop thread, so the
/// hops between a handler and its nghttp2 stream cost an enqueue instead of a cross-thread wake-up.
/// Thread-safe; one instance per connection.
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        eventLoop.execute {
            job.runSynchronously(on: executor)
        }
    }
}
