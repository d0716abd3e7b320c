import RocketRPC
import Testing

@Suite("Call kinds over a real HTTP/2 connection", .serialized, .timeLimit(.minutes(1)))
struct CallKindTests {
    @Test func unaryEchoesTheRequest() async throws {
        let h = try await TestHarness.start()
        let response: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("hello"), options: CallOptions())
        #expect(response.message.text == "hello")
        await h.stop()
    }

    @Test func manyConcurrentUnaryCallsShareOneConnection() async throws {
        let h = try await TestHarness.start()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<200 {
                group.addTask {
                    let r: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("m\(i)"), options: CallOptions())
                    #expect(r.message.text == "m\(i)")
                }
            }
            try await group.waitForAll()
        }
        await h.stop()
    }

    @Test func serverStreamingDeliversEveryMessageInOrderWithTrailers() async throws {
        let h = try await TestHarness.start()
        let (indices, trailers) = try await h.channel.serverStreaming(
            EchoService.expand, request: TestMessage("50:100"), options: CallOptions()
        ) { (stream: ResponseStream<TestMessage>) in
            var indices: [Int] = []
            for try await message in stream {
                indices.append(Int(message.payload[0]) << 24 | Int(message.payload[1]) << 16 | Int(message.payload[2]) << 8 | Int(message.payload[3]))
                #expect(message.payload.count == 100)
            }
            return (indices, try await stream.trailingMetadata)
        }
        #expect(indices == Array(0..<50))
        #expect(trailers.first("x-count") == "50")
        await h.stop()
    }

    @Test("write(contentsOf:) sends a batch in order, plain and gzip-compressed", arguments: ["", ":gzip"])
    func serverStreamingBatchesArriveInOrder(compression: String) async throws {
        let h = try await TestHarness.start()
        let indices = try await h.channel.serverStreaming(
            EchoService.expand, request: TestMessage("50:100:7" + compression), options: CallOptions(compression: .gzip)
        ) { (stream: ResponseStream<TestMessage>) in
            var indices: [Int] = []
            for try await message in stream {
                indices.append(Int(message.payload[0]) << 24 | Int(message.payload[1]) << 16 | Int(message.payload[2]) << 8 | Int(message.payload[3]))
                #expect(message.payload.count == 100)
            }
            return indices
        }
        #expect(indices == Array(0..<50))
        #expect(h.recorder.count("expand.gzip-response") == (compression.isEmpty ? 0 : 1))
        #expect(h.recorder.count("expand.written") == 50)
        await h.stop()
    }

    @Test func clientStreamingCollectsAllRequests() async throws {
        let h = try await TestHarness.start()
        let response: UnaryResponse<TestMessage> = try await h.channel.clientStreaming(EchoService.collect, options: CallOptions()) { writer in
            for i in 0..<20 { try await writer.write(TestMessage("r\(i)")) }
        }
        #expect(response.message.text == (0..<20).map { "r\($0)" }.joined(separator: ","))
        await h.stop()
    }

    @Test func clientStreamingWithNoRequestsReturnsEmpty() async throws {
        let h = try await TestHarness.start()
        let response: UnaryResponse<TestMessage> = try await h.channel.clientStreaming(EchoService.collect, options: CallOptions()) { (_: RequestWriter<TestMessage>) in }
        #expect(response.message.text == "")
        await h.stop()
    }

    @Test func bidirectionalStreamingEchoesConcurrently() async throws {
        let h = try await TestHarness.start()
        let replies = try await h.channel.bidirectionalStreaming(
            EchoService.update, options: CallOptions(),
            requests: { (writer: RequestWriter<TestMessage>) in
                for i in 0..<30 { try await writer.write(TestMessage("b\(i)")) }
            },
            handle: { (stream: ResponseStream<TestMessage>) in
                var replies: [String] = []
                for try await message in stream { replies.append(message.text) }
                return replies
            }
        )
        #expect(replies == (0..<30).map { "echo:b\($0)" })
        await h.stop()
    }

    @Test func bidirectionalResponsesArriveBeforeTheRequestStreamEnds() async throws {
        let h = try await TestHarness.start()
        // The producer waits for each echo before sending the next: only works if responses flow
        // while the request stream is still open.
        let gate = AsyncStream<Void>.makeStream()
        let count = try await h.channel.bidirectionalStreaming(
            EchoService.update, options: CallOptions(timeout: .seconds(10)),
            requests: { (writer: RequestWriter<TestMessage>) in
                var iterator = gate.stream.makeAsyncIterator()
                for i in 0..<5 {
                    try await writer.write(TestMessage("p\(i)"))
                    _ = await iterator.next()
                }
            },
            handle: { (stream: ResponseStream<TestMessage>) in
                var n = 0
                for try await _ in stream {
                    n += 1
                    gate.continuation.yield()
                }
                return n
            }
        )
        #expect(count == 5)
        await h.stop()
    }
}
