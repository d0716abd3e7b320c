import RocketRPC
import Testing

@Suite("Message size limits, compression and large messages", .serialized, .timeLimit(.minutes(1)))
struct LimitsAndCompressionTests {
    @Test func requestOverTheServerLimitIsResourceExhausted() async throws {
        let h = try await TestHarness.start(server: { $0.maxReceiveMessageSize = 1024 })
        let error = await #expect(throws: RPCError.self) {
            let _: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage(payload: Array(repeating: 7, count: 2000)), options: CallOptions())
        }
        #expect(error?.code == .resourceExhausted)
        // A message under the limit still works on the same connection.
        let ok: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("small"), options: CallOptions())
        #expect(ok.message.text == "small")
        await h.stop()
    }

    @Test func responseOverTheClientLimitIsResourceExhausted() async throws {
        let h = try await TestHarness.start()
        let error = await #expect(throws: RPCError.self) {
            let _: UnaryResponse<TestMessage> = try await h.channel.unary(
                EchoService.get, request: TestMessage(payload: Array(repeating: 7, count: 2000)), options: CallOptions(maxReceiveMessageSize: 1024))
        }
        #expect(error?.code == .resourceExhausted)
        let streamError = await #expect(throws: RPCError.self) {
            try await h.channel.serverStreaming(EchoService.expand, request: TestMessage("3:5000"), options: CallOptions(maxReceiveMessageSize: 4096)) { (stream: ResponseStream<TestMessage>) in
                for try await _ in stream {}
            }
        }
        #expect(streamError?.code == .resourceExhausted)
        await h.stop()
    }

    @Test func gzipWorksInBothDirections() async throws {
        let h = try await TestHarness.start()
        let payload = Array(repeating: UInt8(ascii: "z"), count: 100_000)
        let response: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage(payload: payload), options: CallOptions(compression: .gzip))
        #expect(response.message.payload == payload)
        #expect(h.recorder.count("get.gzip-request") == 1)
        await h.stop()
    }

    @Test func compressedMessageOverTheLimitAfterInflationIsResourceExhausted() async throws {
        // 100 KB of zeros compresses to ~100 bytes: the limit must apply to the inflated size.
        let h = try await TestHarness.start(server: { $0.maxReceiveMessageSize = 10_000 })
        let error = await #expect(throws: RPCError.self) {
            let _: UnaryResponse<TestMessage> = try await h.channel.unary(
                EchoService.get, request: TestMessage(payload: Array(repeating: 0, count: 100_000)), options: CallOptions(compression: .gzip))
        }
        #expect(error?.code == .resourceExhausted)
        await h.stop()
    }

    @Test func sixtyFourMebibyteMessageRoundTrips() async throws {
        let size = 64 * 1024 * 1024
        let limit = size + 1024
        let h = try await TestHarness.start(server: { $0.maxReceiveMessageSize = limit }, channel: { $0.maxReceiveMessageSize = limit })
        var payload = [UInt8](repeating: 0, count: size)
        for i in stride(from: 0, to: size, by: 4096) { payload[i] = UInt8(truncatingIfNeeded: i >> 12) }
        let response: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage(payload: payload), options: CallOptions(timeout: .seconds(50)))
        #expect(response.message.payload.count == size)
        #expect(response.message.payload == payload)
        await h.stop()
    }
}
