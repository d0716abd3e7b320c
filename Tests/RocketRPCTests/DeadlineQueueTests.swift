import NIOCore
import NIOPosix
import Synchronization
import Testing
@testable import RocketRPC

/// `DeadlineQueue`: one timer for a connection's deadlines; arming and cancelling in any order.
@Suite("Deadline queue", .timeLimit(.minutes(1)))
struct DeadlineQueueTests {
    /// Names of the calls whose deadline expired.
    final class Expired: Sendable {
        let names = Mutex<[String]>([])
        func add(_ name: String) { names.withLock { $0.append(name) } }
        var all: [String] { names.withLock { $0 } }
    }

    /// A call; touched only on the test's event loop.
    final class Call: DeadlineExpiring, @unchecked Sendable {
        let name: String
        let log: Expired
        var deadlines: DeadlineQueue?
        var deadlineSlot = -1
        init(_ name: String, _ log: Expired) { self.name = name; self.log = log }
        func deadlineExpired() { log.add(name) }
    }

    /// The loop-confined queue and calls, for closures that run on the loop.
    final class State: @unchecked Sendable {
        var queue: DeadlineQueue?
        var calls: [Call] = []
    }

    func onLoop<T: Sendable>(_ loop: any EventLoop, _ body: @escaping @Sendable () -> T) async throws -> T {
        try await loop.submit(body).get()
    }

    /// A queue on an event loop, set up by `arm` on that loop.
    func queue(arm: @escaping @Sendable (DeadlineQueue, State, Expired) -> Void) async throws -> (any EventLoop, State, Expired) {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let log = Expired()
        let state = State()
        try await onLoop(loop) {
            let queue = DeadlineQueue(eventLoop: loop)
            state.queue = queue
            arm(queue, state, log)
        }
        return (loop, state, log)
    }

    @Test func expiresWhatIsDueAndNothingCancelled() async throws {
        let (loop, state, log) = try await queue { queue, state, log in
            // The first armed is the latest: the timer must move forward for the later arms.
            for (name, ms) in [("late", 3000), ("b", 40), ("a", 20), ("cancelled", 30), ("c", 60)] {
                let call = Call(name, log)
                state.calls.append(call)
                queue.arm(call, in: .milliseconds(Int64(ms)))
            }
            queue.cancel(state.calls[3])
            queue.cancel(state.calls[3])  // twice: harmless
        }
        try await Task.sleep(for: .milliseconds(500))
        #expect(Set(log.all) == ["a", "b", "c"])
        #expect(log.all.count == 3)
        let left = try await onLoop(loop) { () -> Int in
            state.queue!.cancel(state.calls[0])
            return state.queue!.count
        }
        #expect(left == 0)
    }

    @Test func manyCallsWithOneTimeoutExpireExactlyThoseNotCancelled() async throws {
        let (loop, state, log) = try await queue { queue, state, log in
            state.calls = (0..<1000).map { Call("\($0)", log) }
            for call in state.calls { queue.arm(call, in: .milliseconds(30)) }
            // Cancel every other one, from the middle outwards (slots move as entries leave).
            for index in stride(from: 0, to: 1000, by: 2).sorted(by: { abs($0 - 500) < abs($1 - 500) }) {
                queue.cancel(state.calls[index])
            }
            // Re-arming moves a deadline rather than adding a second one.
            queue.arm(state.calls[1], in: .milliseconds(40))
        }
        try await Task.sleep(for: .milliseconds(600))
        #expect(Set(log.all) == Set(stride(from: 1, to: 1000, by: 2).map { "\($0)" }))
        #expect(log.all.count == 500)
        #expect(try await onLoop(loop) { state.queue!.count } == 0)
    }
}
