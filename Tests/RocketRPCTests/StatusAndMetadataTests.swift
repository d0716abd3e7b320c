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

    /// A channel reuses the header block of its last calls with the same method, metadata,
    /// compression and timeout: every call must still carry its own metadata and timeout, also
    /// when a value it reused was changed in between, or more variants alternate than it keeps.
    @Test func reusedRequestHeadersFollowEveryChangeOfMetadataAndTimeout() async throws {
        let h = try await TestHarness.start()
        func echoed(_ options: CallOptions) async throws -> String? {
            let response: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("metadata"), options: options)
            return response.initialMetadata.first("x-which")
        }
        func granted(_ options: CallOptions) async throws -> Int {
            let response: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("deadline"), options: options)
            return try #require(Int(response.message.text), "\(response.message.text)")
        }
        var options = CallOptions(timeout: .seconds(30))
        options.metadata.add("x-which", "changed")
        #expect(try await echoed(options) == "changed")
        // The same variable, changed where it is (no other copy of it here).
        options.metadata.remove("x-which")
        options.metadata.add("x-which", "second")
        #expect(try await echoed(options) == "second")
        var first = CallOptions(timeout: .seconds(30))
        first.metadata.add("x-which", "first")
        let kept = first
        #expect(try await echoed(first) == "first")
        first.metadata.remove("x-which")
        first.metadata.add("x-which", "other")
        #expect(try await echoed(first) == "other")
        #expect(try await echoed(kept) == "first")
        // Metadata built anew for each call, freed after it: the next one is likely to get the
        // same memory, which must not pass for the same metadata.
        for index in 0..<20 {
            var fresh = CallOptions(timeout: .seconds(30))
            fresh.metadata.add("x-which", "fresh-\(index)")
            #expect(try await echoed(fresh) == "fresh-\(index)")
        }
        // More variants than the channel keeps, in turn.
        let variants = (0..<9).map { index in
            var variant = CallOptions(timeout: .seconds(30))
            variant.metadata.add("x-which", "variant-\(index)")
            return variant
        }
        for round in 0..<3 {
            for (index, variant) in variants.enumerated() {
                #expect(try await echoed(variant) == "variant-\(index)", "round \(round)")
            }
        }
        // So are the method and the compression: the same options, another method or gzip.
        for _ in 0..<3 {
            #expect(try await echoed(kept) == "first")
            let streamed = try await h.channel.serverStreaming(EchoService.expand, request: TestMessage("1:3"), options: kept) { (stream: ResponseStream<TestMessage>) in
                var payloads: [[UInt8]] = []
                for try await message in stream { payloads.append(message.payload) }
                return payloads
            }
            #expect(streamed == [[0, 0, 0]], "the server-streaming method, not the unary one, answered")
        }
        var gzip = kept
        gzip.compression = .gzip
        let before = h.recorder.count("get.gzip-request")
        for _ in 0..<3 {
            #expect(try await echoed(kept) == "first")
            let zipped: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("zipped"), options: gzip)
            #expect(zipped.message.text == "zipped")
        }
        #expect(h.recorder.count("get.gzip-request") == before + 3)
        // The timeout is part of what is reused: a shorter one reaches the server as such.
        var short = kept
        short.timeout = .seconds(2)
        for _ in 0..<3 {
            #expect(try await granted(kept) > 2_000)
            #expect(try await granted(short) <= 2_000)
        }
        await h.stop()
    }

    /// A channel's default metadata goes with every call, ahead of the call's own, and reserved
    /// names in it are dropped as they are from a call's.
    @Test func aChannelsDefaultMetadataGoesWithEveryCall() async throws {
        let h = try await TestHarness.start(channel: { configuration in
            configuration.defaultCallOptions.metadata.add("x-default", "always")
            configuration.defaultCallOptions.metadata.add("grpc-timeout", "1n")
        })
        func echoed(_ options: CallOptions) async throws -> Metadata {
            let response: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("metadata"), options: options)
            return response.initialMetadata
        }
        let bare = try await echoed(CallOptions(timeout: .seconds(30)))
        #expect(bare.first("x-default") == "always")
        var own = CallOptions(timeout: .seconds(30))
        own.metadata.add("x-own", "mine")
        for _ in 0..<3 {
            let both = try await echoed(own)
            #expect(both.first("x-default") == "always")
            #expect(both.first("x-own") == "mine")
            #expect(both.map(\.name).filter { $0.hasPrefix("x-") } == ["x-default", "x-own"])
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
