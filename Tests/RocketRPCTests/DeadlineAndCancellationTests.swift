import RocketRPC
import Testing

@Suite("Deadlines, cancellation and connection failures", .serialized, .timeLimit(.minutes(1)))
struct DeadlineAndCancellationTests {
    @Test func deadlineExceededEndsTheCallAndCancelsTheServerHandler() async throws {
        let h = try await TestHarness.start()
        let start = ContinuousClock.now
        // 1 s: long enough for the handler to have started on a busy machine, so that the
        // deadline has a running handler to cancel.
        let error = await #expect(throws: RPCError.self) {
            let _: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("sleep"), options: CallOptions(timeout: .seconds(1)))
        }
        #expect(error?.code == .deadlineExceeded)
        #expect(h.recorder.count("get.started") == 1)
        #expect(ContinuousClock.now - start < .seconds(5))
        #expect(await eventually { h.recorder.count("get.cancelled") == 1 })
        await h.stop()
    }

    @Test func cancellingTheCallerTaskResetsTheStreamAndCancelsTheHandler() async throws {
        let h = try await TestHarness.start()
        let task = Task {
            let _: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("sleep"), options: CallOptions())
        }
        #expect(await eventually { h.recorder.count("get.started") == 1 })
        task.cancel()
        let result = await task.result
        #expect(throws: RPCError(code: .cancelled, message: "the call was cancelled by the caller")) { try result.get() }
        #expect(await eventually { h.recorder.count("get.cancelled") == 1 })
        // The connection is still fine for the next call.
        let r: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("after"), options: CallOptions())
        #expect(r.message.text == "after")
        await h.stop()
    }

    /// Cancellation that races the call's start (before, while or after its stream opens on the
    /// event loop) still ends the call: none of these calls to a handler that sleeps 30 s may
    /// outlast the test's time limit, and each ends as CANCELLED.
    @Test func cancellingRightAsTheCallStartsStillEndsIt() async throws {
        let h = try await TestHarness.start()
        // One call first, so the connection is up and the racing calls do not wait for it.
        let _: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("warm"), options: CallOptions())
        for round in 0..<100 {
            let task = Task {
                let _: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("sleep"), options: CallOptions())
            }
            // From no delay to ~100 us: the cancel lands before, during or after the stream opens.
            if round % 4 != 0 { try await Task.sleep(for: .microseconds(25 * (round % 5))) }
            task.cancel()
            let result = await task.result
            #expect(throws: RPCError.self) { try result.get() }
            if case .failure(let error as RPCError) = result { #expect(error.code == .cancelled, "round \(round)") }
        }
        await h.stop()
    }

    /// A call whose deadline is already over fails at once, without reaching the server, also
    /// on a connection that is ready (where calls skip waiting for one).
    @Test func aCallWithNoTimeLeftIsNotSent() async throws {
        let h = try await TestHarness.start()
        let _: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("warm"), options: CallOptions())
        for timeout in [Duration.zero, .milliseconds(-5)] {
            var options = CallOptions()
            options.timeout = timeout
            let error = await #expect(throws: RPCError.self) {
                let _: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("sleep"), options: options)
            }
            #expect(error?.code == .deadlineExceeded)
        }
        try await Task.sleep(for: .milliseconds(100))
        #expect(h.recorder.count("get.started") == 0, "the server ran a call whose deadline was over")
        await h.stop()
    }

    @Test func failFastCallToAClosedPortIsUnavailable() async throws {
        let port = try await unusedPort()
        let channel = RPCChannel(configuration: ChannelConfiguration(host: "127.0.0.1", port: port))
        let error = await #expect(throws: RPCError.self) {
            let _: UnaryResponse<TestMessage> = try await channel.unary(EchoService.get, request: TestMessage("x"), options: CallOptions())
        }
        #expect(error?.code == .unavailable)
        // While backing off, the next fail-fast call fails immediately.
        let start = ContinuousClock.now
        await #expect(throws: RPCError.self) {
            let _: UnaryResponse<TestMessage> = try await channel.unary(EchoService.get, request: TestMessage("x"), options: CallOptions())
        }
        #expect(ContinuousClock.now - start < .milliseconds(500))
        await channel.close()
    }

    @Test func waitForReadyWaitsForTheServerToAppear() async throws {
        let port = try await unusedPort()
        var configuration = ChannelConfiguration(host: "127.0.0.1", port: port)
        configuration.backoff = .init(initial: .milliseconds(100), multiplier: 1.6, jitter: 0.2, maximum: .milliseconds(300))
        let channel = RPCChannel(configuration: configuration)
        let call = Task {
            let r: UnaryResponse<TestMessage> = try await channel.unary(EchoService.get, request: TestMessage("late"), options: CallOptions(timeout: .seconds(10), waitForReady: true))
            return r.message.text
        }
        try await Task.sleep(for: .milliseconds(400))
        let server = RPCServer(configuration: ServerConfiguration(port: port), services: [EchoService(recorder: Recorder())])
        try await server.start()
        #expect(try await call.value == "late")
        await channel.close()
        await server.shutdown(gracePeriod: .seconds(1))
    }

    @Test func waitForReadyIsBoundedByTheDeadline() async throws {
        let port = try await unusedPort()
        var configuration = ChannelConfiguration(host: "127.0.0.1", port: port)
        configuration.backoff = .init(initial: .milliseconds(50), multiplier: 1.6, jitter: 0.2, maximum: .milliseconds(100))
        let channel = RPCChannel(configuration: configuration)
        let start = ContinuousClock.now
        let error = await #expect(throws: RPCError.self) {
            let _: UnaryResponse<TestMessage> = try await channel.unary(EchoService.get, request: TestMessage("x"), options: CallOptions(timeout: .milliseconds(400), waitForReady: true))
        }
        #expect(error?.code == .deadlineExceeded)
        #expect(ContinuousClock.now - start < .seconds(3))
        await channel.close()
    }

    @Test func channelReconnectsAfterTheServerRestarts() async throws {
        let h = try await TestHarness.start()
        let r1: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("one"), options: CallOptions())
        #expect(r1.message.text == "one")
        await h.server.shutdown(gracePeriod: .seconds(1))
        let server2 = RPCServer(configuration: ServerConfiguration(port: h.port), services: [EchoService(recorder: Recorder())])
        try await server2.start()
        let r2: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("two"), options: CallOptions(timeout: .seconds(10), waitForReady: true))
        #expect(r2.message.text == "two")
        await h.channel.close()
        await server2.shutdown(gracePeriod: .seconds(1))
    }
}

/// A port nothing listens on (bound once by a throwaway server, then released).
func unusedPort() async throws -> Int {
    let probe = RPCServer(configuration: ServerConfiguration(port: 0), services: [])
    try await probe.start()
    let port = try #require(probe.localPort)
    await probe.shutdown(gracePeriod: .zero)
    return port
}

@Suite("Early exits and header limits", .serialized, .timeLimit(.minutes(1)))
struct EarlyExitTests {
    @Test func responseHandlerReturningEarlyCancelsTheServerStream() async throws {
        let h = try await TestHarness.start()
        let taken = try await h.channel.serverStreaming(EchoService.expand, request: TestMessage("100000:1000"), options: CallOptions()) { (stream: ResponseStream<TestMessage>) in
            var n = 0
            for try await _ in stream {
                n += 1
                if n == 3 { break }
            }
            return n
        }
        #expect(taken == 3)
        // The server's writes start failing once the stream is reset, so it stops far short of 100000.
        try await Task.sleep(for: .milliseconds(300))
        let written = h.recorder.count("expand.written")
        try await Task.sleep(for: .milliseconds(300))
        #expect(h.recorder.count("expand.written") == written)
        #expect(written < 100_000)
        await h.stop()
    }

    @Test func requestHeadersOverTheLimitFailOnlyThatCall() async throws {
        let h = try await TestHarness.start(server: { $0.maxHeaderListSize = 4096 })
        var options = CallOptions()
        options.metadata.add("x-huge", String(repeating: "a", count: 8000))
        await #expect(throws: RPCError.self) {
            let _: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("x"), options: options)
        }
        let r: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("fine"), options: CallOptions())
        #expect(r.message.text == "fine")
        await h.stop()
    }
}

@Suite("Transparent retry of calls the server never processed", .serialized, .timeLimit(.minutes(1)))
struct TransparentRetryTests {
    @Test func unaryCallsRefusedBeforeTheServersSettingsArriveAreRetried() async throws {
        // Until the client has the server's SETTINGS it assumes 100 concurrent streams; the server,
        // limited to 1, refuses the excess with RST_STREAM(REFUSED_STREAM). Those calls never reached
        // a handler, so the channel retries them instead of failing them.
        for _ in 0..<3 {
            let h = try await TestHarness.start(server: { $0.maxConcurrentStreams = 1 })
            try await withThrowingTaskGroup(of: String.self) { group in
                for i in 0..<20 {
                    group.addTask {
                        let r: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("c\(i)"), options: CallOptions(timeout: .seconds(10)))
                        return r.message.text
                    }
                }
                var texts: Set<String> = []
                for try await text in group { texts.insert(text) }
                #expect(texts.count == 20)
            }
            await h.stop()
        }
    }
}

@Suite("Client keepalive against the server's ping policy", .serialized, .timeLimit(.minutes(1)))
struct KeepaliveTests {
    /// The peer address the server sees: it changes exactly when the channel had to reconnect.
    private func peer(_ channel: RPCChannel) async throws -> String {
        let r: UnaryResponse<TestMessage> = try await channel.unary(EchoService.get, request: TestMessage("metadata"), options: CallOptions(timeout: .seconds(5), waitForReady: true))
        return r.message.text
    }

    @Test func idlePingsBeyondTheStrictDefaultPolicyGetTheConnectionReplaced() async throws {
        let h = try await TestHarness.start(channel: { $0.keepalive = .init(pingInterval: .milliseconds(40), pingTimeout: .seconds(1)) })
        let before = try await peer(h.channel)
        try await Task.sleep(for: .milliseconds(800))
        let after = try await peer(h.channel)
        #expect(before != after, "the server should have closed the pinging connection (too_many_pings)")
        await h.stop()
    }

    @Test func idlePingsWithinAPermissivePolicyKeepTheConnection() async throws {
        let h = try await TestHarness.start(
            server: { $0.keepalive = .init(minimumReceivedPingInterval: .milliseconds(1), permitPingsWithoutCalls: true) },
            channel: { $0.keepalive = .init(pingInterval: .milliseconds(40), pingTimeout: .seconds(1)) }
        )
        let before = try await peer(h.channel)
        try await Task.sleep(for: .milliseconds(800))
        let after = try await peer(h.channel)
        #expect(before == after)
        await h.stop()
    }
}
