import CProtobufC

/// Checks the string fields of an encoded message before protobuf-c unpacks it.
///
/// protobuf-c hands a string field over as a NUL-terminated C string, without its length: a NUL
/// inside the string would cut it short without a word (a topic `"orders\0x"` read as
/// `"orders"`). It also takes bytes that are not UTF-8 as they come, where proto3 parsers refuse
/// the message, and Swift would then turn them into U+FFFD. Such a message is refused here, as a
/// decoding error, instead of being read as something its sender did not send.
///
/// Only fields the descriptor knows are looked at (nested messages and map entries included);
/// a structure that does not parse is left for protobuf-c to refuse as it always did.
@usableFromInline
enum WireStringCheck {
    /// Why `bytes`, encoding a message of `descriptor`'s type, cannot be unpacked faithfully;
    /// nil when every string field is UTF-8 without NUL (or the bytes do not parse).
    @usableFromInline
    static func problem(in bytes: UnsafeRawBufferPointer, descriptor: UnsafePointer<ProtobufCMessageDescriptor>) -> String? {
        check(bytes, in: 0..<bytes.count, descriptor: descriptor, depth: 0)
    }

    /// Nesting past this is left unchecked (protobuf-c's own limit refuses deeper messages).
    private static let maxDepth = 100

    private static func check(
        _ bytes: UnsafeRawBufferPointer, in range: Range<Int>,
        descriptor: UnsafePointer<ProtobufCMessageDescriptor>, depth: Int
    ) -> String? {
        guard depth < maxDepth else { return nil }
        var reader = ProtoWireReader(bytes, in: range)
        while let (number, wireType) = reader.nextTag() {
            guard wireType == 2 else {
                guard reader.skip(wireType) else { return nil }
                continue
            }
            guard let value = reader.lengthDelimited() else { return nil }
            guard let field = knownFieldDescriptor(number, in: descriptor) else { continue }
            switch field.pointee.type {
            case PROTOBUF_C_TYPE_STRING:
                if let problem = stringProblem(bytes, in: value) {
                    return "field \(number) (\(String(cString: field.pointee.name))) of \(String(cString: descriptor.pointee.name)) \(problem)"
                }
            case PROTOBUF_C_TYPE_MESSAGE:
                let nested = field.pointee.descriptor.assumingMemoryBound(to: ProtobufCMessageDescriptor.self)
                if let problem = check(bytes, in: value, descriptor: nested, depth: depth + 1) { return problem }
            default:
                break
            }
        }
        return nil  // the end, or bytes that do not parse: protobuf-c decides
    }

    /// Why the bytes are not a string protobuf-c can carry: a NUL, or not UTF-8 (RFC 3629: no
    /// overlong forms, no surrogates, nothing past U+10FFFF).
    static func stringProblem(_ bytes: UnsafeRawBufferPointer, in range: Range<Int>) -> String? {
        var i = range.lowerBound
        let end = range.upperBound
        // Eight bytes at a time while they are ASCII without NUL (no high bit, no zero byte).
        while end - i >= 8 {
            let word = bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            let highBits: UInt64 = 0x8080_8080_8080_8080
            guard word & highBits == 0, (word &- 0x0101_0101_0101_0101) & ~word & highBits == 0 else { break }
            i += 8
        }
        while i < end {
            let lead = bytes[i]
            if lead < 0x80 {
                if lead == 0 { return "holds a NUL byte, which this server cannot carry in a string" }
                i += 1
                continue
            }
            let length: Int
            var low: UInt8 = 0x80, high: UInt8 = 0xBF  // the second byte's range
            switch lead {
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; low = 0xA0
            case 0xED: length = 3; high = 0x9F
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xF0: length = 4; low = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; high = 0x8F
            default: return "is not valid UTF-8"
            }
            guard end - i >= length, (low...high).contains(bytes[i + 1]) else { return "is not valid UTF-8" }
            for k in 2..<length where bytes[i + k] & 0xC0 != 0x80 { return "is not valid UTF-8" }
            i += length
        }
        return nil
    }
}
