import RocketRPC
import Testing

/// Bytes that are not a well-formed gRPC call get the right error, and the server keeps serving.
@Suite("Bad input on the wire", .serialized, .timeLimit(.minutes(1)))
struct BadInputTests {
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    static let emptySettings: [UInt8] = [0, 0, 0, 4, 0, 0, 0, 0, 0]

    private func assertStillServing(_ h: TestHarness) async throws {
        let r: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("still here"), options: CallOptions())
        #expect(r.message.text == "still here")
    }

    @Test func http11RequestGets505AndTheConnectionCloses() async throws {
        let h = try await TestHarness.start()
        let port = h.port
        let (reply, closed) = await offPool {
            guard let c = try? RawConnection(port: port) else { return ([UInt8](), false) }
            c.send(Array("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8))
            return c.readUntilClosed()
        }
        #expect(String(decoding: reply, as: UTF8.self).hasPrefix("HTTP/1.1 505"))
        #expect(closed)
        try await assertStillServing(h)
        await h.stop()
    }

    @Test func garbageBytesCloseTheConnection() async throws {
        let h = try await TestHarness.start()
        let port = h.port
        let closed = await offPool {
            guard let c = try? RawConnection(port: port) else { return false }
            c.send((0..<64).map { UInt8(($0 * 37 + 11) % 256) })
            return c.readUntilClosed().closed
        }
        #expect(closed)
        try await assertStillServing(h)
        await h.stop()
    }

    @Test func malformedFrameAfterAValidPrefaceGetsGoAwayProtocolError() async throws {
        let h = try await TestHarness.start()
        let port = h.port
        let (reply, closed) = await offPool {
            guard let c = try? RawConnection(port: port) else { return ([UInt8](), false) }
            // DATA on stream 0 is a connection error of type PROTOCOL_ERROR (RFC 9113 §6.1).
            c.send(Self.preface + Self.emptySettings + [0, 0, 1, 0, 0, 0, 0, 0, 0, 0x78])
            return c.readUntilClosed()
        }
        let goAway = parseFrames(reply).first { $0.type == 7 }
        #expect(goAway != nil)
        if let payload = goAway?.payload, payload.count >= 8 {
            #expect(payload[4..<8] == [0, 0, 0, 1])
        }
        #expect(closed)
        try await assertStillServing(h)
        await h.stop()
    }

    @Test func pingFloodGetsGoAwayEnhanceYourCalm() async throws {
        let h = try await TestHarness.start()
        let port = h.port
        let (reply, closed) = await offPool {
            guard let c = try? RawConnection(port: port) else { return ([UInt8](), false) }
            let ping: [UInt8] = [0, 0, 8, 6, 0, 0, 0, 0, 0] + Array(repeating: 1, count: 8)
            c.send(Self.preface + Self.emptySettings + ping + ping + ping + ping + ping)
            return c.readUntilClosed()
        }
        let frames = parseFrames(reply)
        #expect(frames.contains { $0.type == 6 && $0.flags & 1 == 1 }, "PINGs are acknowledged")
        let goAway = frames.first { $0.type == 7 }
        #expect(goAway.map { Array($0.payload[4..<8]) } == [0, 0, 0, 11])
        #expect(goAway.map { String(decoding: $0.payload.dropFirst(8), as: UTF8.self) } == "too_many_pings")
        #expect(closed)
        try await assertStillServing(h)
        await h.stop()
    }

    /// A HEADERS frame opening `streamID` for `path` (a gRPC POST), END_HEADERS, no END_STREAM;
    /// fields as HPACK literals without indexing (no Huffman).
    static func headersFrame(streamID: UInt32, path: String) -> [UInt8] {
        var block: [UInt8] = []
        for (name, value) in [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "localhost"),
                              ("content-type", "application/grpc"), ("te", "trailers")] {
            block += [0, UInt8(name.utf8.count)] + Array(name.utf8) + [UInt8(value.utf8.count)] + Array(value.utf8)
        }
        let length = UInt32(block.count)
        return [UInt8(length >> 16), UInt8((length >> 8) & 0xFF), UInt8(length & 0xFF), 1, 0x4,
                UInt8(streamID >> 24), UInt8((streamID >> 16) & 0xFF), UInt8((streamID >> 8) & 0xFF), UInt8(streamID & 0xFF)] + block
    }

    @Test func pingFloodOnAConnectionWithACallOpenIsClosedToo() async throws {
        let h = try await TestHarness.start()
        let port = h.port
        let (reply, closed) = await offPool {
            guard let c = try? RawConnection(port: port) else { return ([UInt8](), false) }
            let ping: [UInt8] = [0, 0, 8, 6, 0, 0, 0, 0, 0] + Array(repeating: 1, count: 8)
            // A client-streaming call left open (as a Telemetry stream is), then the pings.
            c.send(Self.preface + Self.emptySettings + Self.headersFrame(streamID: 1, path: EchoService.collect.path))
            c.send(ping + ping + ping + ping + ping)
            return c.readUntilClosed()
        }
        let goAway = parseFrames(reply).first { $0.type == 7 }
        #expect(goAway.map { Array($0.payload[4..<8]) } == [0, 0, 0, 11])
        #expect(closed, "the connection stayed open while its call did")
        try await assertStillServing(h)
        await h.stop()
    }

    @Test func messagesBegunOnManyCallsOfOneConnectionAreBoundedByItsBudget() async throws {
        let h = try await TestHarness.start(server: {
            $0.maxReceiveMessageSize = 256 * 1024
            $0.maxAssemblingBytesPerConnection = 512 * 1024
        })
        let port = h.port
        // Four client-streaming calls, each 150,000 bytes into a 200,011-byte message: the fourth
        // takes the connection past 512 KiB held for messages still arriving.
        let message = grpcFramed(TestMessage(payload: Array(repeating: 7, count: 200_000)))
        let sent = 150_000
        @Sendable func data(_ bytes: ArraySlice<UInt8>, stream: UInt32, end: Bool) -> [UInt8] {
            var frames: [UInt8] = []
            var at = bytes.startIndex
            while at < bytes.endIndex {
                let upper = min(at + 16_384, bytes.endIndex)
                frames += http2Frame(type: 0, flags: end && upper == bytes.endIndex ? 1 : 0, stream: stream, Array(bytes[at..<upper]))
                at = upper
            }
            return frames
        }
        let (reply, completed) = await offPool {
            guard let c = try? RawConnection(port: port) else { return ([UInt8](), [UInt8]()) }
            // The server's SETTINGS acknowledged, so that its 1 MiB stream window applies.
            c.send(Self.preface + Self.emptySettings + [0, 0, 0, 4, 1, 0, 0, 0, 0])
            for stream: UInt32 in [1, 3, 5, 7] {
                c.send(Self.headersFrame(streamID: stream, path: EchoService.collect.path) + data(message[..<sent], stream: stream, end: false))
            }
            let reply = c.read(timeout: .seconds(2)) { parseFrames($0).contains { $0.type == 1 && $0.flags & 1 == 1 } }
            // The calls within the budget go on: the first one's message completes and is answered.
            c.send(data(message[sent...], stream: 1, end: true))
            let completed = c.read(timeout: .seconds(3)) { parseFrames($0).contains { $0.type == 1 && $0.stream == 1 && $0.flags & 1 == 1 } }
            return (reply, completed)
        }
        let ended = Set(parseFrames(reply).filter { $0.type == 1 && $0.flags & 1 == 1 }.map(\.stream))
        #expect(ended == [7], "calls ended early: \(ended.sorted())")
        #expect(parseFrames(completed).contains { $0.type == 0 && $0.stream == 1 }, "the first call got no answer")
        try await assertStillServing(h)
        await h.stop()
    }

    @Test func anAbortedCallWhoseAnswersTheClientDoesNotTakeIsResetAfterItsLinger() async throws {
        let h = try await TestHarness.start(server: { $0.abortedCallLinger = .milliseconds(300) })
        let port = h.port
        let request = grpcFramed(TestMessage("200:10000"))  // 2 MB of answers, past the writer's high water
        let (reply, elapsed) = await offPool {
            guard let c = try? RawConnection(port: port) else { return ([UInt8](), Duration.zero) }
            // The client's windows at 0: it takes no DATA at all.
            let noWindow = http2Frame(type: 4, flags: 0, stream: 0, [0, 4, 0, 0, 0, 0])
            let headers = hpackLiteralFields([
                (":method", "POST"), (":scheme", "http"), (":path", EchoService.expand.path), (":authority", "localhost"),
                ("content-type", "application/grpc"), ("te", "trailers"), ("grpc-timeout", "200m"),
            ])
            let start = ContinuousClock.now
            c.send(Self.preface + noWindow + [0, 0, 0, 4, 1, 0, 0, 0, 0]
                + http2Frame(type: 1, flags: 4, stream: 1, headers) + http2Frame(type: 0, flags: 1, stream: 1, request))
            let reply = c.read(timeout: .seconds(3)) { parseFrames($0).contains { $0.type == 3 && $0.stream == 1 } }
            return (reply, ContinuousClock.now - start)
        }
        // The deadline (200 ms) ended the call with its answers queued; 300 ms later it is reset
        // with CANCEL, which drops them (before, they stayed for as long as the connection).
        let reset = parseFrames(reply).first { $0.type == 3 && $0.stream == 1 }
        #expect(reset.map(\.payload) == [0, 0, 0, 8], "no RST_STREAM CANCEL for the aborted call")
        #expect(elapsed < .seconds(2))
        #expect(await eventually { h.recorder.count("expand.written") < 200 })
        try await assertStillServing(h)
        await h.stop()
    }

    @Test func idleConnectionGetsKeepalivePingAndIsClosedWhenItGoesUnanswered() async throws {
        let h = try await TestHarness.start(server: {
            $0.keepalive.pingInterval = .milliseconds(100)
            $0.keepalive.pingTimeout = .milliseconds(200)
        })
        let port = h.port
        let start = ContinuousClock.now
        let (reply, closed) = await offPool {
            guard let c = try? RawConnection(port: port) else { return ([UInt8](), false) }
            c.send(Self.preface + Self.emptySettings)
            return c.readUntilClosed(timeout: .seconds(5))
        }
        #expect(parseFrames(reply).contains { $0.type == 6 && $0.flags & 1 == 0 }, "the server pinged")
        #expect(closed)
        #expect(ContinuousClock.now - start < .seconds(3))
        try await assertStillServing(h)
        await h.stop()
    }

    @Test func wrongContentTypeGets415() async throws {
        let h = try await TestHarness.start()
        let body = try temporaryFile([0, 0, 0, 0, 0])
        guard let output = await runNghttp(["-H", "content-type: text/plain", "-d", body, "http://127.0.0.1:\(h.port)/rocketrpc.test.Echo/Get"]) else {
            await h.stop()
            return
        }
        #expect(output.contains(":status: 415"), "\(output)")
        try await assertStillServing(h)
        await h.stop()
    }

    @Test func truncatedLengthPrefixIsInternal() async throws {
        let h = try await TestHarness.start()
        // Declares 10 bytes, sends 3, then END_STREAM.
        let body = try temporaryFile([0, 0, 0, 0, 10, 1, 2, 3])
        guard let output = await runNghttp(["-H", "content-type: application/grpc", "-H", "te: trailers", "-d", body, "http://127.0.0.1:\(h.port)/rocketrpc.test.Echo/Get"]) else {
            await h.stop()
            return
        }
        #expect(output.contains("grpc-status: 13"), "\(output)")
        try await assertStillServing(h)
        await h.stop()
    }

    @Test func unsupportedEncodingIsUnimplemented() async throws {
        let h = try await TestHarness.start()
        let body = try temporaryFile([1, 0, 0, 0, 1, 0])
        guard let output = await runNghttp(["-H", "content-type: application/grpc", "-H", "grpc-encoding: snappy", "-d", body, "http://127.0.0.1:\(h.port)/rocketrpc.test.Echo/Get"]) else {
            await h.stop()
            return
        }
        #expect(output.contains("grpc-status: 12"), "\(output)")
        #expect(output.contains("grpc-accept-encoding: gzip,identity"), "\(output)")
        await h.stop()
    }

    @Test func serverEnforcesGrpcTimeoutAndCancelsTheHandler() async throws {
        let h = try await TestHarness.start()
        // Only the server has a timer here: nghttp has no notion of gRPC deadlines.
        let request = TestMessage("sleep").serializedBytes()
        let body = try temporaryFile([0, 0, 0, 0, UInt8(request.count)] + request)
        let start = ContinuousClock.now
        guard let output = await runNghttp(["-H", "content-type: application/grpc", "-H", "grpc-timeout: 200m", "-d", body, "http://127.0.0.1:\(h.port)/rocketrpc.test.Echo/Get"]) else {
            await h.stop()
            return
        }
        #expect(output.contains("grpc-status: 4"), "\(output)")
        #expect(ContinuousClock.now - start < .seconds(5))
        #expect(await eventually { h.recorder.count("get.cancelled") == 1 })
        await h.stop()
    }
}
