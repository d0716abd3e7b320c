import NIOCore
import NIOPosix
import RocketRPC
import Synchronization
import Testing

@Suite("Tasks on an event loop", .timeLimit(.minutes(1)))
struct EventLoopTaskExecutorTests {
    /// Jobs enqueued from the loop itself wait in one queue drained by one loop task: a task that
    /// keeps yielding must still let the loop's other work run between its steps.
    @Test func aTaskThatKeepsYieldingDoesNotStarveTheLoop() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let executor = EventLoopTaskExecutor(eventLoop: group.next())
        let seenAfter = await Task(executorPreference: executor) { () -> Int? in
            #expect(executor.eventLoop.inEventLoop)
            await Task.yield()  // from here on the task runs from the loop's own queue of jobs
            let ran = Atomic(false)
            executor.eventLoop.execute { ran.store(true, ordering: .relaxed) }
            for step in 0..<1_000 {
                await Task.yield()
                #expect(executor.eventLoop.inEventLoop)
                if ran.load(ordering: .relaxed) { return step }
            }
            return nil
        }.value
        let steps = try #require(seenAfter, "the loop's task never ran while the task kept yielding")
        #expect(steps <= 2)
        try await group.shutdownGracefully()
    }

    /// Many tasks resumed by the loop in one go (as a read of many responses resumes their
    /// callers) all run, on the loop.
    @Test func tasksResumedTogetherOnTheLoopAllRun() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let executor = EventLoopTaskExecutor(eventLoop: loop)
        let waiting = Waiting()
        let count = 200
        try await withThrowingTaskGroup(of: Bool.self) { tasks in
            for _ in 0..<count {
                tasks.addTask(executorPreference: executor) {
                    await withCheckedContinuation { continuation in waiting.list.withLock { $0.append(continuation) } }
                    return loop.inEventLoop
                }
            }
            for _ in 0..<500 where waiting.list.withLock({ $0.count }) < count { try await Task.sleep(for: .milliseconds(10)) }
            let all = waiting.list.withLock { $0 }
            #expect(all.count == count)
            try await loop.submit { for continuation in all { continuation.resume() } }.get()
            var onLoop = 0
            for try await ranOnLoop in tasks where ranOnLoop { onLoop += 1 }
            #expect(onLoop == count)
        }
        try await group.shutdownGracefully()
    }
}

private final class Waiting: Sendable {
    let list = Mutex<[CheckedContinuation<Void, Never>]>([])
}
