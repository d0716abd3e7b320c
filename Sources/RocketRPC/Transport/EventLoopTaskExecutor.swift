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
    private let queue = LoopQueue()

    public init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// Jobs enqueued on the loop itself (tasks resumed by the loop's own I/O: a read of several
    /// responses resumes as many callers) wait in one queue that one loop task drains, rather
    /// than costing a loop task (a closure and the loop's task queue) each. Jobs from other
    /// threads go through the loop's task queue, as before.
    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        guard eventLoop.inEventLoop else {
            let executor = asUnownedTaskExecutor()
            eventLoop.execute { job.runSynchronously(on: executor) }
            return
        }
        queue.jobs.append(job)
        guard !queue.drainScheduled else { return }
        queue.drainScheduled = true
        eventLoop.execute { self.drain() }
    }

    /// Runs the jobs queued so far; jobs they enqueue wait for the next drain, behind whatever
    /// else the loop has to do (its I/O is not starved by tasks that keep resuming each other).
    private func drain() {
        let executor = asUnownedTaskExecutor()
        var batch = queue.jobs
        queue.jobs = queue.spare
        queue.spare = []
        queue.drainScheduled = false
        for job in batch { job.runSynchronously(on: executor) }
        batch.removeAll(keepingCapacity: true)
        queue.spare = batch
    }
}

/// An ``EventLoopTaskExecutor``'s queue of jobs enqueued on its loop: touched only on that
/// loop's thread, hence the unchecked `Sendable` and exclusivity (never re-entered while a
/// property is being mutated: jobs run after the swap).
private final class LoopQueue: @unchecked Sendable {
    @exclusivity(unchecked) var jobs: [UnownedJob] = []
    /// The other array, kept for its capacity: the two take turns as the queue and the batch.
    @exclusivity(unchecked) var spare: [UnownedJob] = []
    @exclusivity(unchecked) var drainScheduled = false
}
