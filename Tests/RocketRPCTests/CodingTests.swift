import NIOCore
import Testing

@testable import RocketRPC

@Suite("Wire encodings: grpc-timeout, percent-encoding, base64, framing")
struct CodingTests {
    @Test(arguments: [
        ("1H", Duration.seconds(3600)), ("2M", .seconds(120)), ("3S", .seconds(3)), ("250m", .milliseconds(250)),
        ("7u", .microseconds(7)), ("99999999n", .nanoseconds(99_999_999)), ("0S", .zero),
    ])
    func grpcTimeoutParsesEveryUnit(text: String, expected: Duration) {
        #expect(GRPCTimeout.parse(text) == expected)
    }

    @Test(arguments: ["", "S", "123456789S", "10x", "-1S", "1.5S", " 1S", "1s"])
    func grpcTimeoutRejectsMalformedValues(text: String) {
        #expect(GRPCTimeout.parse(text) == nil)
    }

    @Test func grpcTimeoutFormatsWithinEightDigitsAndNeverShortens() {
        #expect(GRPCTimeout.format(.milliseconds(250)) == "250m")
        #expect(GRPCTimeout.format(.milliseconds(1_230)) == "1230m")
        #expect(GRPCTimeout.format(.seconds(120)) == "2M")
        #expect(GRPCTimeout.format(.nanoseconds(123_456_789_123)) == "123457m")
        #expect(GRPCTimeout.format(.microseconds(1_234_567)) == "1235m")
        #expect(GRPCTimeout.format(.microseconds(567)) == "567u")
        #expect(GRPCTimeout.format(.seconds(86_400 * 30)) == "720H")
        #expect(GRPCTimeout.format(.nanoseconds(1)) == "1n")
        #expect(GRPCTimeout.format(.zero) == "0n")
        #expect(GRPCTimeout.format(.seconds(-5)) == "0n")
        for d in [Duration.milliseconds(1), .seconds(1), .seconds(100), .seconds(86_400 * 30), .nanoseconds(123_456_789_123)] {
            let text = GRPCTimeout.format(d)
            #expect(text.count <= 9, "\(text)")
            let parsed = try! #require(GRPCTimeout.parse(text))
            #expect(parsed >= d, "\(text) is shorter than \(d)")
        }
        // Saturates at Int64.max nanoseconds rather than overflowing.
        #expect(GRPCTimeout.format(.seconds(Int64.max)) == "2562048H")
    }

    /// Calls with one timeout send one `grpc-timeout` value (their headers are written well within
    /// a millisecond of their start), so HPACK indexes it once per connection instead of adding an
    /// entry per call; and the server's deadline is never more than 1 ms (nor 1%) later.
    @Test func grpcTimeoutRoundsSoEqualTimeoutsShareOneValue() {
        for elapsedMicros in [0, 1, 7, 250, 999] {
            #expect(GRPCTimeout.format(.seconds(30) - .microseconds(elapsedMicros)) == "30S", "\(elapsedMicros) µs elapsed")
        }
        #expect(GRPCTimeout.format(.seconds(30) - .microseconds(5_000)) == "29995m")
        #expect(GRPCTimeout.format(.milliseconds(100) - .nanoseconds(3_217)) == "100m")
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            let d = Duration.nanoseconds(Int64.random(in: 1...(Int64(1) << 50), using: &generator))
            let parsed = GRPCTimeout.parse(GRPCTimeout.format(d))!
            #expect(parsed >= d && parsed <= d * 1.01 + .nanoseconds(1), "\(d) became \(GRPCTimeout.format(d))")
            // Never a millisecond later while milliseconds fit in the header's 8 digits (~27 h).
            if d < .milliseconds(99_999_999) { #expect(parsed - d <= .milliseconds(1), "\(d) became \(GRPCTimeout.format(d))") }
        }
    }

    @Test func percentEncodingRoundTripsAndEscapesOnlyWhatItMust() {
        let text = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n"
        let encoded = PercentEncoding.encode(text)
        #expect(encoded.utf8.allSatisfy { $0 >= 0x20 && $0 <= 0x7E })
        #expect(encoded.hasPrefix("%09%0Atest with whitespace%0D%0A"))
        #expect(PercentEncoding.decode(encoded) == text)
        #expect(PercentEncoding.encode("100% sure") == "100%25 sure")
        #expect(PercentEncoding.encode("plain") == "plain")
        // Lenient decoding keeps malformed escapes.
        #expect(PercentEncoding.decode("50%zz%4") == "50%zz%4")
    }

    @Test func base64AcceptsPaddedAndUnpaddedAndEmitsUnpadded() {
        for length in 0..<10 {
            let bytes = (0..<length).map { UInt8(($0 * 97 + 3) % 256) }
            let unpadded = Base64.encode(bytes, padded: false)
            let padded = Base64.encode(bytes, padded: true)
            #expect(!unpadded.hasSuffix("="))
            #expect(padded.count % 4 == 0)
            #expect(Base64.decode(unpadded) == bytes)
            #expect(Base64.decode(padded) == bytes)
        }
        #expect(Base64.encode(Array("hello".utf8), padded: true) == "aGVsbG8=")
        #expect(Base64.decode("a") == nil)
        #expect(Base64.decode("a*==") == nil)
        #expect(Base64.decode("aGVsbG8=x") == nil)
    }

    @Test func metadataLowercasesNamesAndEncodesBinaryValuesOnTheWire() {
        var metadata: Metadata = ["X-Key": "v1"]
        metadata.add("x-key", "v2")
        metadata.add("Trace-Bin", binary: [0xDE, 0xAD, 0xBE])
        #expect(metadata.values("x-key") == ["v1", "v2"])
        #expect(metadata.firstBinary("trace-bin") == [0xDE, 0xAD, 0xBE])
        var wire: [(String, String)] = []
        metadata.appendWireHeaders(to: &wire)
        #expect(wire.map(\.0) == ["x-key", "x-key", "trace-bin"])
        #expect(wire[2].1 == "3q2+")
        var back = Metadata()
        for (name, value) in wire { back.addWireHeader(name: name, value: value) }
        #expect(back == metadata)
        // Padded input is accepted too.
        var padded = Metadata()
        padded.addWireHeader(name: "a-bin", value: "AQ==")
        #expect(padded.firstBinary("a-bin") == [1])
        metadata.remove("X-KEY")
        #expect(metadata.first("x-key") == nil)
        // Protocol headers never become metadata.
        var reserved = Metadata()
        let protocolNames = [
            ":path", ":authority", "content-type", "te", "grpc-timeout", "grpc-encoding", "grpc-accept-encoding",
            "grpc-status", "grpc-message", "content-length", "connection", "host",
        ]
        for name in protocolNames { reserved.addWireHeader(name: name, value: "0") }
        #expect(reserved.isEmpty)
        // Names that only share a first letter or a prefix with them are metadata.
        var custom = Metadata()
        let customNames = ["trace-id", "tenant", "grpc-trace-bin", "grpc-statusx", "cookie", "hosts", "authorization", "x-mq-client-id"]
        for name in customNames { custom.add(name, name.hasSuffix("-bin") ? "AQ" : "v") }
        var sent: [(String, String)] = []
        custom.appendWireHeaders(to: &sent)
        #expect(sent.map(\.0) == customNames)
        #expect(protocolNames.allSatisfy(Metadata.isReserved) && !customNames.contains(where: Metadata.isReserved))
    }

    /// `withFirstValueBytes` reads what `first(_:)` returns, in place for received fields.
    @Test func firstValueBytesAgreeWithFirst() {
        let received = Metadata(wireFields: HeaderBlock([
            ("x-mq-client-id", "client-1"), ("x-mq-client-id", "client-2"), ("trace-bin", "AQI"), ("x-empty", ""),
        ]))
        var built = Metadata()
        built.add("X-MQ-Client-ID", "client-1")
        built.add("trace-bin", binary: [1, 2])
        for metadata in [received, built] {
            for name in ["x-mq-client-id", "X-MQ-CLIENT-ID", "trace-bin", "x-empty", "absent", "content-type"] {
                let bytes = metadata.withFirstValueBytes(name) { $0.map { Array($0) } }
                #expect(bytes == metadata.first(name).map { Array($0.utf8) }, "\(name)")
            }
        }
        #expect(received.withFirstValueBytes("x-mq-client-id") { $0.map { String(decoding: $0, as: UTF8.self) } } == "client-1")
        #expect(received.withFirstValueBytes("absent") { $0 == nil })
    }

    /// A field is binary when its name ends in `-bin`, whatever it is stored as.
    @Test func binaryFieldNamesEndInDashBin() {
        for name in ["trace-bin", "-bin", "a-b-bin", String("x-bin".utf16.map { Character(UnicodeScalar($0)!) })] {
            #expect(Metadata.isBinary(name), "\(name)")
        }
        for name in ["bin", "x-bi", "x-binx", "xbin", "", "x-BIN", "é-bin-é"] {
            #expect(!Metadata.isBinary(name), "\(name)")
        }
    }

    @Test func framerAndDeframerRoundTripAcrossArbitraryChunkBoundaries() throws {
        let messages: [[UInt8]] = [[], [1], Array(repeating: 9, count: 70_000), Array(0..<200).map { UInt8($0) }]
        var wire = ByteBuffer()
        for m in messages { wire.writeImmutableBuffer(try MessageFramer.frame(m, compression: nil)) }
        for chunkSize in [1, 2, 5, 7, 4096, wire.readableBytes] {
            var deframer = MessageDeframer(maxMessageSize: 100_000, compression: nil)
            var out: [[UInt8]] = []
            var copy = wire
            while let chunk = copy.readSlice(length: min(chunkSize, copy.readableBytes)), chunk.readableBytes > 0 {
                try deframer.append(chunk) { out.append(Array($0.readableBytesView)) }
            }
            try deframer.finish()
            #expect(out == messages, "chunk size \(chunkSize)")
        }
    }

    @Test func deframerReportsTruncationOversizeAndBadFlags() throws {
        var truncated = MessageDeframer(maxMessageSize: 100, compression: nil)
        try truncated.append(ByteBuffer(bytes: [0, 0, 0, 0, 10, 1, 2, 3])) { _ in Issue.record("no message expected") }
        #expect(throws: DeframingError.truncated(buffered: 3 + 5)) { try truncated.finish() }

        var partialPrefix = MessageDeframer(maxMessageSize: 100, compression: nil)
        try partialPrefix.append(ByteBuffer(bytes: [0, 0])) { _ in }
        #expect(throws: DeframingError.self) { try partialPrefix.finish() }

        var oversize = MessageDeframer(maxMessageSize: 100, compression: nil)
        #expect(throws: DeframingError.messageTooLarge(size: 101, limit: 100)) {
            try oversize.append(ByteBuffer(bytes: [0, 0, 0, 0, 101])) { _ in }
        }
        var badFlag = MessageDeframer(maxMessageSize: 100, compression: nil)
        #expect(throws: DeframingError.invalidFlag(2)) { try badFlag.append(ByteBuffer(bytes: [2, 0, 0, 0, 0])) { _ in } }
        var compressedWithoutEncoding = MessageDeframer(maxMessageSize: 100, compression: nil)
        #expect(throws: DeframingError.compressedWithoutEncoding) { try compressedWithoutEncoding.append(ByteBuffer(bytes: [1, 0, 0, 0, 0])) { _ in } }
    }

    @Test func gzipFramingRoundTripsAndSetsTheFlag() throws {
        let payload = Array(repeating: UInt8(ascii: "a"), count: 10_000)
        let framed = try MessageFramer.frame(payload, compression: .gzip)
        #expect(framed.getInteger(at: 0, as: UInt8.self) == 1)
        #expect(framed.readableBytes < 1000)
        var deframer = MessageDeframer(maxMessageSize: 20_000, compression: .gzip)
        var out: [UInt8] = []
        try deframer.append(framed) { out = Array($0.readableBytesView) }
        #expect(out == payload)
    }

    @Test func backoffFollowsTheConnectionBackoffSpec() {
        let backoff = ChannelConfiguration.Backoff()
        #expect(backoff.baseDelay(attempt: 0) == .seconds(1))
        #expect(abs((backoff.baseDelay(attempt: 1) - .seconds(1.6)) / .milliseconds(1)) < 1)
        #expect(backoff.baseDelay(attempt: 30) == .seconds(120))
        for attempt in 0..<12 {
            let d = backoff.delay(attempt: attempt)
            let base = backoff.baseDelay(attempt: attempt)
            #expect(d >= base * 0.8 && d <= base * 1.2)
        }
    }

    @Test func statusCodesHaveCanonicalNamesAndHTTPMapping() {
        #expect(StatusCode.deadlineExceeded.name == "DEADLINE_EXCEEDED")
        #expect(StatusCode.internalError.name == "INTERNAL")
        #expect(StatusCode.allCases.count == 17)
        #expect(StatusCode.fromHTTPStatus(404) == .unimplemented)
        #expect(StatusCode.fromHTTPStatus(503) == .unavailable)
        #expect(StatusCode.fromHTTPStatus(401) == .unauthenticated)
        #expect(StatusCode.fromHTTPStatus(418) == .unknown)
        #expect(MethodDescriptor(service: "a.B", method: "C").path == "/a.B/C")
        #expect(MethodDescriptor(path: "/a.B/C") == MethodDescriptor(service: "a.B", method: "C"))
        #expect(MethodDescriptor(path: "/a.B") == nil)
        #expect(MethodDescriptor(path: "a.B/C") == nil)
        #expect(RPCError(code: .notFound, message: "x").description == "NOT_FOUND: x")
    }
}
