/// The protobuf wire format, read field by field within a range of bytes, without protobuf-c:
/// for the broker's reading of a `SendMessageRequest` straight from its bytes, and for checking
/// string fields before protobuf-c unpacks a message. Every read returns nil (or false) on
/// malformed input instead of throwing: the caller then gives up.
package struct ProtoWireReader {
    package let bytes: UnsafeRawBufferPointer
    package private(set) var position: Int
    package let end: Int
    /// Set when a read failed; `nextTag` then returns nil and `atEnd` stays false.
    private var failed = false

    package init(_ bytes: UnsafeRawBufferPointer, in range: Range<Int>) {
        self.bytes = bytes
        position = range.lowerBound
        end = range.upperBound
    }

    /// Consumed the whole range without a malformed read.
    package var atEnd: Bool { !failed && position == end }

    /// The next field number and wire type; nil at the end or on a malformed tag.
    package mutating func nextTag() -> (field: UInt32, wireType: UInt8)? {
        guard !failed, position < end else { return nil }
        guard let tag = varint(), tag >> 3 > 0, tag >> 3 <= 0x1FFF_FFFF else { failed = true; return nil }
        return (UInt32(tag >> 3), UInt8(tag & 7))
    }

    /// A varint of at most 10 bytes, as protobuf-c accepts.
    package mutating func varint() -> UInt64? {
        // Most varints here are tags and lengths under 128: one byte.
        if position < end, bytes[position] < 0x80 {
            position += 1
            return UInt64(bytes[position - 1])
        }
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while position < end, shift < 70 {
            let byte = bytes[position]
            position += 1
            result |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return result }
            shift += 7
        }
        failed = true
        return nil
    }

    /// The payload range of a length-delimited field.
    package mutating func lengthDelimited() -> Range<Int>? {
        guard let length = varint(), length <= UInt64(end - position) else { failed = true; return nil }
        let start = position
        position += Int(length)
        return start..<position
    }

    /// Reads past a field's value; false for groups and malformed values.
    package mutating func skip(_ wireType: UInt8) -> Bool {
        switch wireType {
        case 0: return varint() != nil
        case 1, 5:
            let size = wireType == 1 ? 8 : 4
            guard end - position >= size else { failed = true; return false }
            position += size
            return true
        case 2: return lengthDelimited() != nil
        default:
            failed = true
            return false
        }
    }
}
