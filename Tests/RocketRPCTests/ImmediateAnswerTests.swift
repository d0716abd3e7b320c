import RocketRPC
import Testing

/// `rocketrpc.test.Immediate/Answer`, registered with an immediate handler. The request text picks
/// the answer: `now:X` answers X at once, `later:X` answers X after a suspension, `fail` throws,
/// `later-fail` throws from the deferred work. The handler records whether it ran inside a task.
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
        await #expect(throws: RPCError.self) {
            let _: UnaryResponse<TestMessage> = try await h.channel.unary(
                ImmediateService.answer, request: TestMessage("later-sleep"), options: CallOptions(timeout: .milliseconds(200)))
        }
        #expect(await eventually { recorder.count("sleep.cancelled") == 1 })
        #expect(recorder.count("sleep.started") == 1)
        await h.stop()
    }

    @Test func withHandlersOffTheEventLoopTheHandlerRunsInTheCallsTask() async throws {
        let recorder = Recorder()
        let h = try await TestHarness.start(extraServices: [ImmediateService(recorder: recorder)], server: { $0.runHandlersOnEventLoop = false })
        let a = try await call(h, "now:a")
        let b = try await call(h, "later:b")
        #expect(a == "a" && b == "b")
        #expect(recorder.count("inside-task") == 2 && recorder.count("outside-task") == 0)
        await h.stop()
    }
}
