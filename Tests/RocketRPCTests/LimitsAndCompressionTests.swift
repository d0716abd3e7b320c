import Foundation
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

    /// The server announces RFC 9218 (SETTINGS_NO_RFC7540_PRIORITIES = 1: no priority tree, closed
    /// streams not retained for one) and still answers a request that carries an RFC 7540
    /// priority signal in its HEADERS and a PRIORITY frame for a closed stream.
    @Test func serverAnnouncesRFC9218AndIgnoresRFC7540PrioritySignals() async throws {
        let h = try await TestHarness.start()
        let port = h.port
        let framed = grpcFramed(TestMessage("prioritized"))
        let frames = await offPool { () -> [(type: UInt8, flags: UInt8, stream: UInt32, payload: [UInt8])] in
            guard let c = try? RawConnection(port: port) else { return [] }
            let headers = grpcRequestHeaders(path: "/rocketrpc.test.Echo/Get")
            // END_HEADERS | PRIORITY: depends on stream 0, weight 200.
            let prioritized = http2Frame(type: 1, flags: 0x4 | 0x20, stream: 1, [0, 0, 0, 0, 200] + headers)
            let data = http2Frame(type: 0, flags: 0x1, stream: 1, framed)
            c.send(BadInputTests.preface + BadInputTests.emptySettings + prioritized + data)
            let answered = { (bytes: [UInt8]) in parseFrames(bytes).contains { $0.type == 1 && $0.stream == 1 && $0.flags & 0x1 != 0 } }
            var bytes = c.read(until: answered)
            // A PRIORITY frame for the stream that just closed, then a second call on stream 3.
            let second = http2Frame(type: 1, flags: 0x4, stream: 3, headers) + http2Frame(type: 0, flags: 0x1, stream: 3, framed)
            c.send(http2Frame(type: 2, flags: 0, stream: 1, [0, 0, 0, 0, 16]) + second)
            bytes += c.read(until: { parseFrames(bytes + $0).contains { $0.type == 1 && $0.stream == 3 && $0.flags & 0x1 != 0 } })
            return parseFrames(bytes)
        }
        let settings = frames.first { $0.type == 4 && $0.flags & 0x1 == 0 }?.payload ?? []
        var entries: [(id: UInt16, value: UInt32)] = []
        for i in stride(from: 0, to: settings.count - 5, by: 6) {
            let id = UInt16(settings[i]) << 8 | UInt16(settings[i + 1])
            var value: UInt32 = 0
            for byte in settings[(i + 2)..<(i + 6)] { value = value << 8 | UInt32(byte) }
            entries.append((id, value))
        }
        #expect(entries.contains { $0.id == 0x9 && $0.value == 1 }, "SETTINGS_NO_RFC7540_PRIORITIES = 1 in \(entries)")
        for stream: UInt32 in [1, 3] {
            #expect(frames.contains { $0.type == 0 && $0.stream == stream && $0.payload.count > 5 }, "stream \(stream) got its response message")
            #expect(frames.contains { $0.type == 1 && $0.stream == stream && $0.flags & 0x1 != 0 }, "stream \(stream) got its trailers")
            #expect(!frames.contains { $0.type == 3 && $0.stream == stream }, "stream \(stream) not reset")
        }
        #expect(!frames.contains { $0.type == 7 }, "no GOAWAY")
        await h.stop()
    }

    /// Under RFC 9218 every request stream is incremental: a stream opened later gets DATA frames
    /// in turn with an older one that has much more to send, instead of waiting for all of it
    /// (non-incremental streams of one urgency go oldest first). Large windows, so that flow
    /// control does not interleave the streams by itself.
    @Test(arguments: ["streaming", "unary"])
    func aLaterStreamIsNotStarvedByAnOlderOneWithMoreToSend(_ kind: String) async throws {
        let h = try await TestHarness.start()
        // A server-streaming reply written as one 1 MiB message, or a unary reply of 1 MiB.
        let largeRequest = kind == "streaming"
            ? (path: "/rocketrpc.test.Echo/Expand", message: TestMessage("1:1048576:1"))
            : (path: "/rocketrpc.test.Echo/Get", message: TestMessage("big:1048576"))
        let port = h.port
        let frames = await offPool { () -> [(type: UInt8, flags: UInt8, stream: UInt32, payload: [UInt8])] in
            guard let c = try? RawConnection(port: port) else { return [] }
            let window: [UInt8] = [0x01, 0, 0, 0]  // 16 MiB
            let settings = http2Frame(type: 4, flags: 0, stream: 0, [0, 4] + window)  // INITIAL_WINDOW_SIZE
            let connectionWindow = http2Frame(type: 8, flags: 0, stream: 0, window)
            let headers = grpcRequestHeaders(path: "/rocketrpc.test.Echo/Expand")
            // Stream 1: a 1 MiB reply, queued at once; stream 3: a small one.
            let large = http2Frame(type: 1, flags: 0x4, stream: 1, grpcRequestHeaders(path: largeRequest.path))
                + http2Frame(type: 0, flags: 0x1, stream: 1, grpcFramed(largeRequest.message))
            let small = http2Frame(type: 1, flags: 0x4, stream: 3, headers) + http2Frame(type: 0, flags: 0x1, stream: 3, grpcFramed(TestMessage("1:100")))
            c.send(BadInputTests.preface + settings + connectionWindow + large + small)
            let ended = { (bytes: [UInt8]) in Set(parseFrames(bytes).filter { $0.type == 1 && $0.flags & 0x1 != 0 }.map(\.stream)).count == 2 }
            return parseFrames(c.read(timeout: .seconds(10), until: ended))
        }
        let data = frames.enumerated().filter { $0.element.type == 0 && !$0.element.payload.isEmpty }
        let largeFrames = data.filter { $0.element.stream == 1 }.map(\.offset)
        let smallFrame = data.first { $0.element.stream == 3 }?.offset
        #expect(largeFrames.count > 8, "the 1 MiB reply spans many DATA frames")
        if let smallFrame, let lastLarge = largeFrames.last {
            #expect(smallFrame < lastLarge, "stream 3's reply waited for all of stream 1's")
            #expect(largeFrames.filter { $0 < smallFrame }.count <= 4, "stream 3 got its turn early")
        } else {
            Issue.record("missing DATA: \(data.count) frames")
        }
        await h.stop()
    }

    /// Calls on one connection that accept different encodings each get what they accept: the
    /// server keeps the latest `grpc-accept-encoding` it parsed, and must not answer a call with
    /// another call's value.
    @Test func eachCallOnAConnectionIsAnsweredInTheEncodingsItAccepts() async throws {
        let h = try await TestHarness.start()
        let port = h.port
        // Expand "1:64:1:gzip": one 64-byte message, gzip-compressed if the client accepts gzip.
        let request = TestMessage("1:64:1:gzip").serializedBytes()
        let framed: [UInt8] = [0] + withUnsafeBytes(of: UInt32(request.count).bigEndian, Array<UInt8>.init) + request
        let accepts = ["identity", "gzip,identity", "identity", "identity", "gzip"]
        let frames = await offPool { () -> [(type: UInt8, flags: UInt8, stream: UInt32, payload: [UInt8])] in
            guard let c = try? RawConnection(port: port) else { return [] }
            var bytes = BadInputTests.preface + BadInputTests.emptySettings
            for (i, accept) in accepts.enumerated() {
                let headers = hpackLiteralFields([
                    (":method", "POST"), (":scheme", "http"), (":path", "/rocketrpc.test.Echo/Expand"), (":authority", "localhost"),
                    ("content-type", "application/grpc"), ("te", "trailers"), ("grpc-accept-encoding", accept),
                ])
                let stream = UInt32(2 * i + 1)
                bytes += http2Frame(type: 1, flags: 0x4, stream: stream, headers) + http2Frame(type: 0, flags: 0x1, stream: stream, framed)
            }
            c.send(bytes)
            let ended = { (bytes: [UInt8]) in Set(parseFrames(bytes).filter { $0.type == 1 && $0.flags & 0x1 != 0 }.map(\.stream)).count == accepts.count }
            return parseFrames(c.read(until: ended))
        }
        for (i, accept) in accepts.enumerated() {
            let data = frames.filter { $0.type == 0 && $0.stream == UInt32(2 * i + 1) }.flatMap(\.payload)
            // The first byte of a length-prefixed message is its compressed flag.
            #expect(data.first == (accept.contains("gzip") ? 1 : 0), "call \(i) accepting \(accept)")
        }
        await h.stop()
    }
}
