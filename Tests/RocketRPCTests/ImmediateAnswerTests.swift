import Foundation
import RocketRPC
import Testing

/// `rocketrpc.test.Immediate/Answer`, registered with an immediate handler. The request text picks
/// the answer: `now:X` answers X at once, `later:X` answers X after a suspension, `fail` throws,
/// `later-fail` throws from the deferred work, `callback:X` answers X from another thread. The handler records whether it ran inside a task.
private struct ImmediateService: RPCService {
    static let answer = MethodDescriptor(service: "rocketrpc.test.Immediate", method: "Answer")
    let recorder: Recorder
    var serviceName: String { "rocketrpc.test.Immediate" }

    func register(into router: inout RPCRouter) {
        let recorder = recorder
        router.unary(Self.answer, immediate: { (request: TestMessage, context: ServerContext) throws -> ImmediateAnswer<TestMessage> in
            recorder.bump(withUnsafeCurrentTask { $0 == nil } ? "outside-task" : "inside-task")
            let text = request.text
            if text == "fail" { throw RPCError(code: .failedPrecondition, message: "refused at once") }
            if text == "later-fail" {
                return .later { throw RPCError(code: .aborted, message: "refused later") }
            }
            if text == "later-sleep" {
                return .later {
                    recorder.bump("sleep.started")
                    do {
                        try await Task.sleep(for: .seconds(30))
                    } catch {
                        recorder.bump("sleep.cancelled")
                        throw error
                    }
                    return TestMessage("woke")
                }
            }
            if text.hasPrefix("callback:") || text.hasPrefix("callback-fail:") {
                // `callback:X` / `callback-fail:X` answer after 20 ms (`X` ms when `X` is a
                // number), from a thread of their own: no task anywhere.
                let fails = text.hasPrefix("callback-fail:")
                let payload = String(text.split(separator: ":", maxSplits: 1)[1])
                return .callback { done in
                    let thread = Thread {
                        Thread.sleep(forTimeInterval: Double(Int(payload) ?? 20) / 1000)
                        recorder.bump(withUnsafeCurrentTask { $0 == nil } ? "callback-outside-task" : "callback-inside-task")
                        if fails {
                            done(.failure(RPCError(code: .aborted, message: "refused by callback")))
                        } else {
                            done(.success(TestMessage(payload)))
                        }
                        recorder.bump("callback-done")
                    }
                    thread.start()
                }
            }
            if text.hasPrefix("later:") {
                return .later {
                    try await Task.sleep(for: .milliseconds(20))
                    recorder.bump("later-done")
                    return TestMessage(String(text.dropFirst(6)))
                }
            }
            return .now(TestMessage(String(text.dropFirst(4))))
        })
    }
}

@Suite("Immediate unary handlers", .serialized, .timeLimit(.minutes(1)))
struct ImmediateAnswerTests {
    private func call(_ h: TestHarness, _ text: String) async throws -> String {
        let r: UnaryResponse<TestMessage> = try await h.channel.unary(ImmediateService.answer, request: TestMessage(text), options: CallOptions())
        return r.message.text
    }

    private func expectDeadlineExceeded(_ h: TestHarness, _ text: String, timeout: Duration) async {
        await #expect(throws: RPCError.self) {
            let _: UnaryResponse<TestMessage> = try await h.channel.unary(
                ImmediateService.answer, request: TestMessage(text), options: CallOptions(timeout: timeout))
        }
    }

    @Test func answersNowWithoutATaskAndLaterInOne() async throws {
        let recorder = Recorder()
        let h = try await TestHarness.start(extraServices: [ImmediateService(recorder: recorder)])
        let first = try await call(h, "now:first")
        #expect(first == "first")
        #expect(recorder.count("outside-task") == 1 && recorder.count("inside-task") == 0)
        let second = try await call(h, "later:second")
        #expect(second == "second")
        #expect(recorder.count("later-done") == 1)
        // Many at once on one connection, both kinds interleaved.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<100 {
                group.addTask {
                    let answer = try await call(h, i % 2 == 0 ? "now:n\(i)" : "later:l\(i)")
                    #expect(answer == (i % 2 == 0 ? "n\(i)" : "l\(i)"))
                }
            }
            try await group.waitForAll()
        }
        #expect(recorder.count("inside-task") == 0)
        await h.stop()
    }

    @Test func errorsThrownNowOrLaterEndTheCallWithTheirStatus() async throws {
        let h = try await TestHarness.start(extraServices: [ImmediateService(recorder: Recorder())])
        await #expect(throws: RPCError(code: .failedPrecondition, message: "refused at once")) { try await call(h, "fail") }
        await #expect(throws: RPCError(code: .aborted, message: "refused later")) { try await call(h, "later-fail") }
        let fine = try await call(h, "now:still fine")
        #expect(fine == "still fine")
        await h.stop()
    }

    /// Deferred work is the call's task: the client's deadline cancels it as it would a handler.
    @Test func aDeadlineCancelsDeferredWork() async throws {
        let recorder = Recorder()
        let h = try await TestHarness.start(extraServices: [ImmediateService(recorder: recorder)])
        // The connection is made first, and the deadline leaves room for a loaded machine: in
        // the full parallel suite on two cores, connecting took longer than a 200 ms deadline,
        // the call failed before the server saw it, and there was nothing to cancel.
        #expect(try await call(h, "now:connected") == "connected")
        await expectDeadlineExceeded(h, "later-sleep", timeout: .seconds(1))
        #expect(await eventually { recorder.count("sleep.cancelled") == 1 })
        #expect(recorder.count("sleep.started") == 1)
        await h.stop()
    }

    @Test func aCallbackAnswersFromAnyThreadWithoutATask() async throws {
        let recorder = Recorder()
        let h = try await TestHarness.start(extraServices: [ImmediateService(recorder: recorder)])
        let answer = try await call(h, "callback:from elsewhere")
        #expect(answer == "from elsewhere")
        await #expect(throws: RPCError(code: .aborted, message: "refused by callback")) { try await call(h, "callback-fail:x") }
        // Many at once on one connection, every kind interleaved.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<60 {
                group.addTask {
                    let kind = ["now", "later", "callback"][i % 3]
                    let answer = try await call(h, "\(kind):\(kind)\(i)")
                    #expect(answer == "\(kind)\(i)")
                }
            }
            try await group.waitForAll()
        }
        #expect(recorder.count("inside-task") == 0 && recorder.count("callback-inside-task") == 0)
        #expect(recorder.count("callback-outside-task") == 22)
        await h.stop()
    }

    /// A callback that comes after the call ended (here: its deadline) is dropped; the connection
    /// and its later calls are unaffected.
    @Test func aCallbackAfterTheDeadlineIsDropped() async throws {
        let recorder = Recorder()
        let h = try await TestHarness.start(extraServices: [ImmediateService(recorder: recorder)])
        await expectDeadlineExceeded(h, "callback:300", timeout: .milliseconds(100))
        #expect(await eventually { recorder.count("callback-done") == 1 })
        let after = try await call(h, "callback:still fine")
        #expect(after == "still fine")
        await h.stop()
    }

    @Test func withHandlersOffTheEventLoopTheHandlerRunsInTheCallsTask() async throws {
        let recorder = Recorder()
        let h = try await TestHarness.start(extraServices: [ImmediateService(recorder: recorder)], server: { $0.runHandlersOnEventLoop = false })
        let a = try await call(h, "now:a")
        let b = try await call(h, "later:b")
        let c = try await call(h, "callback:c")
        #expect(a == "a" && b == "b" && c == "c")
        #expect(recorder.count("inside-task") == 3 && recorder.count("outside-task") == 0)
        await h.stop()
    }
}
