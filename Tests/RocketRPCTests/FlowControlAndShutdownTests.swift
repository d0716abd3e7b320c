import RocketRPC
import Testing

@Suite("Flow control, back-pressure and graceful shutdown", .serialized, .timeLimit(.minutes(1)))
struct FlowControlAndShutdownTests {
    @Test func slowReaderSuspendsTheServersWritesWithBoundedDataInFlight() async throws {
        let h = try await TestHarness.start()
        let messageSize = 64 * 1024
        let total = 300  // 19 MiB if nothing pushed back
        let (read, maxInFlight) = try await h.channel.serverStreaming(
            EchoService.expand, request: TestMessage("\(total):\(messageSize)"), options: CallOptions(timeout: .seconds(40))
        ) { (stream: ResponseStream<TestMessage>) in
            var read = 0
            var maxInFlight = 0
            for try await _ in stream {
                read += 1
                if read % 20 == 0 && read < 100 {
                    // Pause: the server keeps writing only until windows and queues are full.
                    try await Task.sleep(for: .milliseconds(300))
                    maxInFlight = max(maxInFlight, h.recorder.count("expand.written") - read)
                }
            }
            return (read, maxInFlight)
        }
        #expect(read == total)
        // Stream window 1 MiB + held-back 256 KiB + outbound queue 512 KiB + socket buffers: well under 19 MiB.
        #expect(maxInFlight > 0)
        #expect(maxInFlight * messageSize < 6 * 1024 * 1024, "in flight: \(maxInFlight) messages")
        await h.stop()
    }

    @Test func slowServerReaderPushesBackOnTheClientWriter() async throws {
        let h = try await TestHarness.start()
        let written = Recorder()
        let replies = try await h.channel.bidirectionalStreaming(
            EchoService.update, options: CallOptions(timeout: .seconds(40)),
            requests: { (writer: RequestWriter<TestMessage>) in
                for i in 0..<200 {
                    try await writer.write(TestMessage(payload: Array(repeating: UInt8(i % 100), count: 64 * 1024)))
                    written.bump("w")
                }
            },
            handle: { (stream: ResponseStream<TestMessage>) in
                var n = 0
                var maxAhead = 0
                for try await _ in stream {
                    n += 1
                    if n == 10 {
                        try await Task.sleep(for: .milliseconds(400))
                        maxAhead = written.count("w") - n
                    }
                }
                return (n, maxAhead)
            }
        )
        #expect(replies.0 == 200)
        #expect(replies.1 < 150, "the writer got \(replies.1) messages ahead of the reader")
        await h.stop()
    }

    @Test func gracefulShutdownFinishesInFlightCallsAndRefusesNewOnes() async throws {
        let h = try await TestHarness.start()
        let inFlight = Task {
            let r: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("slow"), options: CallOptions(timeout: .seconds(10)))
            return r.message.text
        }
        try await Task.sleep(for: .milliseconds(100))
        let start = ContinuousClock.now
        await h.server.shutdown(gracePeriod: .seconds(5))
        #expect(ContinuousClock.now - start < .seconds(4))
        #expect(try await inFlight.value == "slow")
        #expect(h.recorder.count("get.slow.done") == 1)
        let error = await #expect(throws: RPCError.self) {
            let _: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("late"), options: CallOptions())
        }
        #expect(error?.code == .unavailable)
        await h.channel.close()
    }

    @Test func shutdownGracePeriodBoundsAHandlerThatNeverFinishes() async throws {
        let h = try await TestHarness.start()
        let stuck = Task {
            let _: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("sleep"), options: CallOptions())
        }
        #expect(await eventually { h.recorder.count("get.started") == 1 })
        let start = ContinuousClock.now
        await h.server.shutdown(gracePeriod: .milliseconds(300))
        #expect(ContinuousClock.now - start < .seconds(3))
        await #expect(throws: RPCError.self) { try await stuck.value }
        #expect(await eventually { h.recorder.count("get.cancelled") == 1 })
        await h.channel.close()
    }

    @Test func gracefulShutdownSendsTwoGoAwaysAroundAPing() async throws {
        let h = try await TestHarness.start()
        let port = h.port
        let connection = try RawConnection(port: port)
        connection.send(Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [0, 0, 0, 4, 0, 0, 0, 0, 0])
        _ = await offPool { [connection] in connection.read(timeout: .seconds(2)) { parseFrames($0).contains { $0.type == 4 } } }
        let shutdown = Task { await h.server.shutdown(gracePeriod: .seconds(5)) }
        let first = await offPool { [connection] in
            connection.read(timeout: .seconds(2)) { bytes in
                let frames = parseFrames(bytes)
                return frames.contains { $0.type == 7 } && frames.contains { $0.type == 6 && $0.flags == 0 }
            }
        }
        let frames = parseFrames(first)
        let notice = try #require(frames.first { $0.type == 7 })
        #expect(Array(notice.payload[0..<4]) == [0x7F, 0xFF, 0xFF, 0xFF], "first GOAWAY announces 2^31-1")
        let ping = try #require(frames.first { $0.type == 6 && $0.flags == 0 })
        connection.send([0, 0, 8, 6, 1, 0, 0, 0, 0] + ping.payload)
        let rest = await offPool { [connection] in connection.readUntilClosed(timeout: .seconds(3)) }
        let final = parseFrames(rest.bytes).first { $0.type == 7 }
        #expect(final.map { Array($0.payload[0..<4]) } == [0, 0, 0, 0], "final GOAWAY names the last processed stream")
        #expect(rest.closed)
        await shutdown.value
        await h.channel.close()
    }

    @Test func runReturnsAfterShutdown() async throws {
        let server = RPCServer(configuration: ServerConfiguration(), services: [EchoService(recorder: Recorder())])
        try await server.start()
        let running = Task { try await server.run() }
        try await Task.sleep(for: .milliseconds(50))
        await server.shutdown(gracePeriod: .seconds(1))
        try await running.value
    }
}
