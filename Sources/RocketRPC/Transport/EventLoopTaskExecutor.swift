import NIOCore

/// Runs Swift tasks on a NIO event loop (a `TaskExecutor` for `Task(executorPreference:)`).
///
/// Server handlers started with this preference run on their connection's event loop thread, so the
/// hops between a handler and its nghttp2 stream cost an enqueue instead of a cross-thread wake-up.
/// Clients can do the same: tasks that prefer the event loop of a channel's group
/// (``RPCChannel/init(configuration:eventLoopGroup:logger:)`` with a one-thread group) make their
/// calls without a thread hop. Such tasks must not block. Thread-safe.
public final class EventLoopTaskExecutor: TaskExecutor {
    public let eventLoop: any EventLoop

    public init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        eventLoop.execute {
            job.runSynchronously(on: executor)
        }
    }
}
