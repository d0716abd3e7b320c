import RocketRPC
import RocketProto
import Testing

@Suite("Status codes and metadata", .serialized, .timeLimit(.minutes(1)))
struct StatusAndMetadataTests {
    @Test func requestMetadataIncludingBinaryReachesHandlerAndComesBackAsHeadersAndTrailers() async throws {
        let h = try await TestHarness.start()
        var options = CallOptions()
        options.metadata.add("x-text", "plain value")
        options.metadata.add("x-data-bin", binary: [0, 1, 2, 0xFF, 0xFE])
        options.metadata.add("X-Upper", "lowercased")
        let response: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("metadata"), options: options)
        #expect(response.initialMetadata.first("x-text") == "plain value")
        #expect(response.initialMetadata.firstBinary("x-data-bin") == [0, 1, 2, 0xFF, 0xFE])
        #expect(response.initialMetadata.first("x-upper") == "lowercased")
        #expect(response.trailingMetadata.first("x-text") == "plain value")
        #expect(response.trailingMetadata.firstBinary("x-data-bin") == [0, 1, 2, 0xFF, 0xFE])
        // The handler answers with ServerContext.peer.
        #expect(response.message.text.hasPrefix("127.0.0.1:"))
        await h.stop()
    }

    /// nghttp2 sends a request's header fields from the caller's bytes (no copy), and a request
    /// beyond the server's concurrent-stream limit waits in nghttp2's queue after its call has
    /// handed them over: each call must still reach the server with its own metadata.
    @Test func requestsQueuedBehindTheStreamLimitKeepTheirOwnMetadata() async throws {
        let h = try await TestHarness.start(server: { $0.maxConcurrentStreams = 1 })
        // One call first, so the client knows the limit and queues the rest itself.
        let _: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("warm-up"), options: CallOptions())
        try await withThrowingTaskGroup(of: (String, String?).self) { group in
            for i in 0..<64 {
                group.addTask {
                    var options = CallOptions(timeout: .seconds(20))
                    let own = "call-\(i)-" + String(repeating: "\(i % 10)", count: 100 + i)
                    options.metadata.add("x-own", own)
                    if i % 2 == 0 {
                        let response: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("metadata"), options: options)
                        return (own, response.initialMetadata.first("x-own"))
                    }
                    // A streaming call hands its stream opener over once the stream is open.
                    let response: UnaryResponse<TestMessage> = try await h.channel.clientStreaming(EchoService.collect, options: options) { writer in
                        try await writer.write(TestMessage("x-own"))
                    }
                    return (own, response.message.text)
                }
            }
            var answered = 0
            for try await (own, echoed) in group {
                #expect(echoed == own)
                answered += 1
            }
            #expect(answered == 64)
        }
        await h.stop()
    }

    @Test func statusMessageWithSpecialCharactersRoundTrips() async throws {
        let h = try await TestHarness.start()
        let message = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n"
        let error = await #expect(throws: RPCError.self) {
            let _: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("fail:9:" + message), options: CallOptions())
        }
        #expect(error?.code == .failedPrecondition)
        #expect(error?.message == message)
        #expect(error?.metadata.first("x-fail") == "yes")
        await h.stop()
    }

    @Test func everyNonOKCodeCrossesTheWire() async throws {
        let h = try await TestHarness.start()
        for code in StatusCode.allCases where code != .ok {
            let error = await #expect(throws: RPCError.self) {
                let _: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("fail:\(code.rawValue):m"), options: CallOptions())
            }
            #expect(error?.code == code)
        }
        await h.stop()
    }

    @Test func nonRPCErrorFromHandlerBecomesUnknownWithItsDescription() async throws {
        let h = try await TestHarness.start()
        let error = await #expect(throws: RPCError.self) {
            let _: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("other-error"), options: CallOptions())
        }
        #expect(error?.code == .unknown)
        #expect(error?.message == "something else went wrong")
        await h.stop()
    }

    @Test func unknownMethodAndUnknownServiceAreUnimplemented() async throws {
        let h = try await TestHarness.start()
        let badMethod = MethodDescriptor(service: "rocketrpc.test.Echo", method: "Nope")
        let e1 = await #expect(throws: RPCError.self) {
            let _: UnaryResponse<TestMessage> = try await h.channel.unary(badMethod, request: TestMessage("x"), options: CallOptions())
        }
        #expect(e1?.code == .unimplemented)
        #expect(e1?.message.contains("Nope") == true)
        let badService = MethodDescriptor(service: "no.Such", method: "Get")
        let e2 = await #expect(throws: RPCError.self) {
            try await h.channel.serverStreaming(badService, request: TestMessage("x"), options: CallOptions()) { (stream: ResponseStream<TestMessage>) in
                for try await _ in stream {}
            }
        }
        #expect(e2?.code == .unimplemented)
        #expect(e2?.message.contains("no.Such") == true)
        await h.stop()
    }

    @Test func undecodableRequestIsInternal() async throws {
        let h = try await TestHarness.start()
        // Field 2 (tag 0x12) is not part of TestMessage: the server's decode fails.
        struct Raw: RocketProto.ProtoMessage {
            static var protoMessageName: String { "raw" }
            init() {}
            init(serializedBytes bytes: UnsafeRawBufferPointer) throws {}
            func serializedBytes() -> [UInt8] { [0x12, 0x01, 0x00] }
        }
        let error = await #expect(throws: RPCError.self) {
            let _: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: Raw(), options: CallOptions())
        }
        #expect(error?.code == .internalError)
        #expect(error?.message.contains("cannot decode") == true)
        await h.stop()
    }

    @Test func serviceNamesAndMethodsAreListed() async throws {
        let server = RPCServer(configuration: ServerConfiguration(), services: [EchoService(recorder: Recorder())])
        #expect(server.serviceNames == ["rocketrpc.test.Echo"])
        var router = RPCRouter()
        EchoService(recorder: Recorder()).register(into: &router)
        #expect(router.methods.map(\.path) == ["/rocketrpc.test.Echo/Collect", "/rocketrpc.test.Echo/Expand", "/rocketrpc.test.Echo/Get", "/rocketrpc.test.Echo/Update"])
    }
}
