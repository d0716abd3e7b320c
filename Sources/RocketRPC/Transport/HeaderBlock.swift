/// One received HEADERS block, kept as the bytes nghttp2 delivered: every name and value laid end to
/// end in one array, with the ranges of each field.
///
/// Receiving a block costs no allocation per field once the session's arrays are warm (they are
/// reused block after block); a reader builds a `String` only for a field it needs as text. Value
/// type; `Sendable` like its arrays.
struct HeaderBlock: Sendable {
    struct Field: Sendable {
        var name: Range<Int>
        var value: Range<Int>
    }

    private(set) var bytes: [UInt8] = []
    private(set) var fields: [Field] = []

    /// Size as SETTINGS_MAX_HEADER_LIST_SIZE counts it (each field's bytes plus 32).
    private(set) var listSize = 0

    var count: Int { fields.count }

    /// Empties the block, keeping its storage for the next one.
    mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
        fields.removeAll(keepingCapacity: true)
        listSize = 0
    }

    /// Reserves room for as much as `other` holds, so copying fields out of it allocates once.
    mutating func reserveCapacity(for other: HeaderBlock) {
        bytes.reserveCapacity(other.bytes.count)
        fields.reserveCapacity(other.fields.count)
    }

    /// Appends one field; `listSize` grows by the RFC 9113 field size.
    mutating func append(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        let n0 = bytes.count
        bytes.append(contentsOf: name)
        let v0 = bytes.count
        bytes.append(contentsOf: value)
        fields.append(Field(name: n0..<v0, value: v0..<bytes.count))
        listSize += name.count + value.count + 32
    }

    /// The name of field `index` as text.
    func name(at index: Int) -> String { String(decoding: bytes[fields[index].name], as: UTF8.self) }

    /// The value of field `index` as text.
    func value(at index: Int) -> String { String(decoding: bytes[fields[index].value], as: UTF8.self) }

    /// Calls `body` with the index, name and value bytes of each field, in order. The buffers are
    /// valid only during the call.
    func forEachField(_ body: (Int, UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Void) rethrows {
        try bytes.withUnsafeBytes { raw in
            for (index, field) in fields.enumerated() {
                try body(index, UnsafeRawBufferPointer(rebasing: raw[field.name]), UnsafeRawBufferPointer(rebasing: raw[field.value]))
            }
        }
    }
}

extension UnsafeRawBufferPointer {
    /// Whether these bytes are exactly `literal`'s UTF-8.
    func equals(_ literal: StaticString) -> Bool {
        count == literal.utf8CodeUnitCount && elementsEqual(UnsafeBufferPointer(start: literal.utf8Start, count: count))
    }

    /// The bytes as a non-negative decimal integer (`:status`, `grpc-status`); nil if they are not one.
    var asciiInteger: Int? {
        guard !isEmpty, count <= 9 else { return nil }
        var value = 0
        for byte in self {
            guard byte >= 0x30 && byte <= 0x39 else { return nil }
            value = value * 10 + Int(byte - 0x30)
        }
        return value
    }

    /// Whether these bytes start with `literal`'s UTF-8.
    func hasPrefix(_ literal: StaticString) -> Bool {
        count >= literal.utf8CodeUnitCount
            && prefix(literal.utf8CodeUnitCount).elementsEqual(UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }
}
