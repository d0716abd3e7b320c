/// Protobuf binary wire format for ``DynamicMessage``s: varints, zigzag, fixed 32/64,
/// length-delimited, packed and unpacked repeated fields, maps, groups, unknown fields.
///
/// Stateless; encoding writes fields in number order (as protobuf-c and protoc's runtimes do) and
/// appends unknown fields last. Decoding accepts packed and unpacked encodings of any repeated
/// scalar, keeps the last value of a repeated singular field, merges repeated occurrences of a
/// message field, and keeps fields the descriptor does not know as raw bytes.
public enum WireCodec {
    /// Wire types (the low three bits of a tag).
    enum WireType: UInt64 {
        case varint = 0, fixed64 = 1, lengthDelimited = 2, startGroup = 3, endGroup = 4, fixed32 = 5
    }

    // MARK: Encoding

    /// Encodes `message` in binary wire format.
    public static func encode(_ message: DynamicMessage) -> [UInt8] {
        var out: [UInt8] = []
        encode(message, into: &out)
        return out
    }

    static func encode(_ message: DynamicMessage, into out: inout [UInt8]) {
        for field in message.descriptor.fields.sorted(by: { $0.number < $1.number }) {
            guard let value = message[field.number] else { continue }
            encodeField(field, value, into: &out)
        }
        out += message.unknownFields
    }

    static func encodeField(_ field: FieldDescriptor, _ value: FieldValue, into out: inout [UInt8]) {
        switch value {
        case .list(let elements):
            if field.isPacked, !elements.isEmpty {
                var body: [UInt8] = []
                for element in elements { encodeScalarBody(field.kind, element, into: &body) }
                writeTag(field.number, .lengthDelimited, into: &out)
                writeVarint(UInt64(body.count), into: &out)
                out += body
            } else {
                for element in elements { encodeSingle(field, element, into: &out) }
            }
        case .map(let entries):
            guard let entry = field.mapEntry else { return }
            for pair in entries {
                var body: [UInt8] = []
                encodeSingle(entry.key.field, pair.key, into: &body)
                encodeSingle(entry.value.field, pair.value, into: &body)
                writeTag(field.number, .lengthDelimited, into: &out)
                writeVarint(UInt64(body.count), into: &out)
                out += body
            }
        default:
            encodeSingle(field, value, into: &out)
        }
    }

    static func encodeSingle(_ field: FieldDescriptor, _ value: FieldValue, into out: inout [UInt8]) {
        switch field.kind {
        case .group:
            writeTag(field.number, .startGroup, into: &out)
            if case .message(let message) = value { encode(message, into: &out) }
            writeTag(field.number, .endGroup, into: &out)
        case .message, .string, .bytes:
            var body: [UInt8] = []
            encodeScalarBody(field.kind, value, into: &body)
            writeTag(field.number, .lengthDelimited, into: &out)
            writeVarint(UInt64(body.count), into: &out)
            out += body
        default:
            writeTag(field.number, wireType(of: field.kind), into: &out)
            encodeScalarBody(field.kind, value, into: &out)
        }
    }

    /// The bytes of a value without its tag (and without a length prefix for length-delimited kinds).
    static func encodeScalarBody(_ kind: FieldDescriptor.Kind, _ value: FieldValue, into out: inout [UInt8]) {
        switch (kind, value) {
        case (.int32, .int32(let v)): writeVarint(UInt64(bitPattern: Int64(v)), into: &out)
        case (.sint32, .int32(let v)): writeVarint(UInt64(UInt32(bitPattern: (v << 1) ^ (v >> 31))), into: &out)
        case (.sfixed32, .int32(let v)): writeFixed32(UInt32(bitPattern: v), into: &out)
        case (.int64, .int64(let v)): writeVarint(UInt64(bitPattern: v), into: &out)
        case (.sint64, .int64(let v)): writeVarint(UInt64(bitPattern: (v << 1) ^ (v >> 63)), into: &out)
        case (.sfixed64, .int64(let v)): writeFixed64(UInt64(bitPattern: v), into: &out)
        case (.uint32, .uint32(let v)): writeVarint(UInt64(v), into: &out)
        case (.fixed32, .uint32(let v)): writeFixed32(v, into: &out)
        case (.uint64, .uint64(let v)): writeVarint(v, into: &out)
        case (.fixed64, .uint64(let v)): writeFixed64(v, into: &out)
        case (.float, .float(let v)): writeFixed32(v.bitPattern, into: &out)
        case (.double, .double(let v)): writeFixed64(v.bitPattern, into: &out)
        case (.bool, .bool(let v)): writeVarint(v ? 1 : 0, into: &out)
        case (.enumeration, .enumeration(let v)): writeVarint(UInt64(bitPattern: Int64(v)), into: &out)
        case (.string, .string(let v)): out += Array(v.utf8)
        case (.bytes, .bytes(let v)): out += v
        case (.message, .message(let m)): encode(m, into: &out)
        default:
            // A value of the wrong shape for its field cannot come from WireCodec or JSONMapping;
            // writing nothing keeps the output a valid encoding.
            break
        }
    }

    static func wireType(of kind: FieldDescriptor.Kind) -> WireType {
        switch kind {
        case .double, .fixed64, .sfixed64: .fixed64
        case .float, .fixed32, .sfixed32: .fixed32
        case .string, .bytes, .message: .lengthDelimited
        case .group: .startGroup
        default: .varint
        }
    }

    static func writeTag(_ number: Int32, _ type: WireType, into out: inout [UInt8]) {
        writeVarint(UInt64(number) << 3 | type.rawValue, into: &out)
    }

    static func writeVarint(_ value: UInt64, into out: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    static func writeFixed32(_ value: UInt32, into out: inout [UInt8]) {
        for shift in stride(from: 0, to: 32, by: 8) { out.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    static func writeFixed64(_ value: UInt64, into out: inout [UInt8]) {
        for shift in stride(from: 0, to: 64, by: 8) { out.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    // MARK: Decoding

    /// Decodes `bytes` as a message of type `descriptor`, resolving nested types in `pool`.
    /// - Throws: ``AdminError/malformedWire(message:reason:)``.
    public static func decode(_ bytes: [UInt8], as descriptor: MessageDescriptor, pool: DescriptorPool) throws(AdminError) -> DynamicMessage {
        var reader = Reader(bytes: bytes, start: 0, end: bytes.count)
        return try decodeMessage(&reader, as: descriptor, pool: pool, endGroup: nil)
    }

    /// How deep messages may nest (protobuf runtimes' default recursion limit), so hostile input
    /// cannot exhaust the stack.
    static let maxDepth = 100

    struct Reader {
        let bytes: [UInt8]
        var position: Int
        let end: Int
        /// Nesting depth of the message being read.
        var depth: Int

        init(bytes: [UInt8], start: Int, end: Int, depth: Int = 0) {
            self.bytes = bytes
            self.position = start
            self.end = end
            self.depth = depth
        }

        var isAtEnd: Bool { position >= end }

        mutating func varint() throws(AdminError) -> UInt64 {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard position < end else { throw .malformedWire(message: "", reason: "truncated varint") }
                let byte = bytes[position]
                position += 1
                if shift < 64 { result |= UInt64(byte & 0x7f) << shift }
                if byte & 0x80 == 0 { return result }
                shift += 7
                if shift >= 70 { throw .malformedWire(message: "", reason: "varint longer than 10 bytes") }
            }
        }

        mutating func fixed32() throws(AdminError) -> UInt32 {
            guard end - position >= 4 else { throw .malformedWire(message: "", reason: "truncated fixed32") }
            var v: UInt32 = 0
            for i in 0..<4 { v |= UInt32(bytes[position + i]) << UInt32(8 * i) }
            position += 4
            return v
        }

        mutating func fixed64() throws(AdminError) -> UInt64 {
            guard end - position >= 8 else { throw .malformedWire(message: "", reason: "truncated fixed64") }
            var v: UInt64 = 0
            for i in 0..<8 { v |= UInt64(bytes[position + i]) << UInt64(8 * i) }
            position += 8
            return v
        }

        /// The range of a length-delimited value; advances past it.
        mutating func lengthDelimited() throws(AdminError) -> Range<Int> {
            let length = try varint()
            guard length <= UInt64(end - position) else {
                throw .malformedWire(message: "", reason: "length \(length) runs past the end of the message")
            }
            let range = position..<(position + Int(length))
            position = range.upperBound
            return range
        }

        /// Skips one value of `type` (for unknown fields); groups are skipped to their end tag.
        mutating func skip(_ type: WireType, number: Int32) throws(AdminError) {
            switch type {
            case .varint: _ = try varint()
            case .fixed64: _ = try fixed64()
            case .fixed32: _ = try fixed32()
            case .lengthDelimited: _ = try lengthDelimited()
            case .startGroup:
                while true {
                    guard !isAtEnd else { throw .malformedWire(message: "", reason: "unterminated group \(number)") }
                    let (innerNumber, innerType) = try tag()
                    if innerType == .endGroup {
                        guard innerNumber == number else { throw .malformedWire(message: "", reason: "mismatched end of group \(number)") }
                        return
                    }
                    try skip(innerType, number: innerNumber)
                }
            case .endGroup:
                throw .malformedWire(message: "", reason: "unexpected end of group \(number)")
            }
        }

        mutating func tag() throws(AdminError) -> (Int32, WireType) {
            let raw = try varint()
            let number = raw >> 3
            guard number > 0, number <= 536_870_911, let type = WireType(rawValue: raw & 7) else {
                throw .malformedWire(message: "", reason: "invalid tag \(raw)")
            }
            return (Int32(number), type)
        }
    }

    static func decodeMessage(_ reader: inout Reader, as descriptor: MessageDescriptor, pool: DescriptorPool, endGroup: Int32?) throws(AdminError) -> DynamicMessage {
        var message = DynamicMessage(descriptor: descriptor)
        guard reader.depth <= maxDepth else {
            throw .malformedWire(message: descriptor.fullName, reason: "messages nested deeper than \(maxDepth) levels")
        }
        do throws(AdminError) {
            while !reader.isAtEnd {
                let start = reader.position
                let (number, type) = try reader.tag()
                if type == .endGroup {
                    guard number == endGroup else { throw AdminError.malformedWire(message: "", reason: "unexpected end of group \(number)") }
                    return message
                }
                guard let field = descriptor.field(number: number), let value = try decodeField(field, type, &reader, pool: pool, existing: message[number]) else {
                    try reader.skip(type, number: number)
                    message.unknownFields += reader.bytes[start..<reader.position]
                    continue
                }
                message.set(field, to: value)
            }
            if endGroup != nil { throw AdminError.malformedWire(message: "", reason: "unterminated group") }
        } catch {
            if case .malformedWire(let name, let reason) = error, name.isEmpty {
                throw .malformedWire(message: descriptor.fullName, reason: reason)
            }
            throw error
        }
        return message
    }

    /// The field's new value after reading one occurrence, or `nil` when the wire type does not fit
    /// the field (the occurrence is then kept as an unknown field, as protobuf runtimes do).
    static func decodeField(_ field: FieldDescriptor, _ type: WireType, _ reader: inout Reader, pool: DescriptorPool, existing: FieldValue?) throws(AdminError) -> FieldValue? {
        if let entry = field.mapEntry {
            guard type == .lengthDelimited, let entryType = field.typeName.flatMap(pool.message(named:)) else { return nil }
            let range = try reader.lengthDelimited()
            var sub = Reader(bytes: reader.bytes, start: range.lowerBound, end: range.upperBound, depth: reader.depth + 1)
            let decoded = try decodeMessage(&sub, as: entryType, pool: pool, endGroup: nil)
            let key = decoded[1] ?? FieldValue.defaultValue(for: entry.key.field) ?? .int32(0)
            var value = decoded[2] ?? FieldValue.defaultValue(for: entry.value.field)
            if value == nil, let typeName = entry.value.field.typeName, let valueType = pool.message(named: typeName) {
                value = .message(DynamicMessage(descriptor: valueType))
            }
            var entries: [FieldValue.MapEntry] = []
            if case .map(let old)? = existing { entries = old }
            entries.removeAll { $0.key == key }
            entries.append(.init(key: key, value: value ?? .int32(0)))
            return .map(entries)
        }
        if field.isRepeated {
            var elements: [FieldValue] = []
            if case .list(let old)? = existing { elements = old }
            if type == .lengthDelimited, field.kind.isPackable {
                let range = try reader.lengthDelimited()
                var sub = Reader(bytes: reader.bytes, start: range.lowerBound, end: range.upperBound)
                while !sub.isAtEnd {
                    guard let element = try decodeScalar(field.kind, wireType(of: field.kind), &sub) else { return nil }
                    elements.append(element)
                }
                return .list(elements)
            }
            guard let element = try decodeSingle(field, type, &reader, pool: pool, existing: nil) else { return nil }
            elements.append(element)
            return .list(elements)
        }
        return try decodeSingle(field, type, &reader, pool: pool, existing: existing)
    }

    static func decodeSingle(_ field: FieldDescriptor, _ type: WireType, _ reader: inout Reader, pool: DescriptorPool, existing: FieldValue?) throws(AdminError) -> FieldValue? {
        switch field.kind {
        case .message, .group:
            guard let typeName = field.typeName, let messageType = pool.message(named: typeName) else {
                throw .malformedWire(message: "", reason: "field \(field.name) has unknown type \(field.typeName ?? "?")")
            }
            var decoded: DynamicMessage
            if field.kind == .group {
                guard type == .startGroup else { return nil }
                reader.depth += 1
                decoded = try decodeMessage(&reader, as: messageType, pool: pool, endGroup: field.number)
                reader.depth -= 1
            } else {
                guard type == .lengthDelimited else { return nil }
                let range = try reader.lengthDelimited()
                var sub = Reader(bytes: reader.bytes, start: range.lowerBound, end: range.upperBound, depth: reader.depth + 1)
                decoded = try decodeMessage(&sub, as: messageType, pool: pool, endGroup: nil)
            }
            if case .message(let old)? = existing {
                decoded = merge(decoded, into: old)
            }
            return .message(decoded)
        default:
            guard type == wireType(of: field.kind) else { return nil }
            return try decodeScalar(field.kind, type, &reader)
        }
    }

    static func decodeScalar(_ kind: FieldDescriptor.Kind, _ type: WireType, _ reader: inout Reader) throws(AdminError) -> FieldValue? {
        switch kind {
        case .int32: return .int32(Int32(truncatingIfNeeded: try reader.varint()))
        case .int64: return .int64(Int64(bitPattern: try reader.varint()))
        case .uint32: return .uint32(UInt32(truncatingIfNeeded: try reader.varint()))
        case .uint64: return .uint64(try reader.varint())
        case .sint32:
            let raw = UInt32(truncatingIfNeeded: try reader.varint())
            return .int32(Int32(bitPattern: (raw >> 1) ^ (0 &- (raw & 1))))
        case .sint64:
            let raw = try reader.varint()
            return .int64(Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1))))
        case .bool: return .bool(try reader.varint() != 0)
        case .enumeration: return .enumeration(Int32(truncatingIfNeeded: try reader.varint()))
        case .fixed32: return .uint32(try reader.fixed32())
        case .sfixed32: return .int32(Int32(bitPattern: try reader.fixed32()))
        case .float: return .float(Float(bitPattern: try reader.fixed32()))
        case .fixed64: return .uint64(try reader.fixed64())
        case .sfixed64: return .int64(Int64(bitPattern: try reader.fixed64()))
        case .double: return .double(Double(bitPattern: try reader.fixed64()))
        case .string:
            let range = try reader.lengthDelimited()
            guard let text = String(validating: reader.bytes[range], as: UTF8.self) else {
                throw .malformedWire(message: "", reason: "string field is not valid UTF-8")
            }
            return .string(text)
        case .bytes:
            return .bytes(Array(reader.bytes[try reader.lengthDelimited()]))
        case .message, .group:
            return nil
        }
    }

    /// Protobuf merge semantics: set fields of `newer` replace singular fields, append to lists,
    /// merge into messages.
    static func merge(_ newer: DynamicMessage, into older: DynamicMessage) -> DynamicMessage {
        var result = older
        for (field, value) in newer.setFields {
            switch (older[field.number], value) {
            case (.list(let a)?, .list(let b)): result.set(field, to: .list(a + b))
            case (.map(let a)?, .map(let b)):
                let keys = b.map(\.key)
                result.set(field, to: .map(a.filter { !keys.contains($0.key) } + b))
            case (.message(let a)?, .message(let b)): result.set(field, to: .message(merge(b, into: a)))
            default: result.set(field, to: value)
            }
        }
        result.unknownFields += newer.unknownFields
        return result
    }
}
