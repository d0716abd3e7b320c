import RocketProto

/// A tiny hand-encoded protobuf message with one `bytes payload = 1;` field, for tests that must not
/// depend on generated code. Decoding is strict: any other field or a bad length throws.
struct TestMessage: ProtoMessage {
    static var protoMessageName: String { "rocketrpc.test.TestMessage" }

    var payload: [UInt8]

    init() { payload = [] }
    init(payload: [UInt8]) { self.payload = payload }
    init(_ text: String) { payload = Array(text.utf8) }

    var text: String { String(decoding: payload, as: UTF8.self) }

    init(serializedBytes bytes: UnsafeRawBufferPointer) throws {
        payload = []
        var i = 0
        func fail(_ reason: String) -> ProtoDecodingError { ProtoDecodingError(messageName: Self.protoMessageName, reason: reason) }
        while i < bytes.count {
            guard bytes[i] == 0x0A else { throw fail("unexpected tag \(bytes[i])") }
            i += 1
            var length = 0
            var shift = 0
            while true {
                guard i < bytes.count, shift < 64 else { throw fail("truncated length") }
                let b = bytes[i]
                i += 1
                length |= Int(b & 0x7F) << shift
                shift += 7
                if b & 0x80 == 0 { break }
            }
            guard length <= bytes.count - i else { throw fail("length \(length) past end") }
            payload = Array(bytes[i..<(i + length)])
            i += length
        }
    }

    func serializedBytes() -> [UInt8] {
        if payload.isEmpty { return [] }
        var out: [UInt8] = [0x0A]
        var n = payload.count
        while n >= 0x80 {
            out.append(UInt8(n & 0x7F) | 0x80)
            n >>= 7
        }
        out.append(UInt8(n))
        out.reserveCapacity(out.count + payload.count)
        out.append(contentsOf: payload)
        return out
    }
}
