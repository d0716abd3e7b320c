/// One HEADERS block as bytes: one array holding, per field, the name's and the value's lengths
/// (4 bytes each, little-endian) followed by the name and value. Received blocks keep what nghttp2
/// delivered; a client's request headers are built this way too (a channel's fixed fields once,
/// copied per call with one `memcpy`, instead of an array of `String` pairs per call).
///
/// Receiving a block costs no allocation once the session's array is warm (it is reused block after
/// block), and copying fields out (a request's metadata) costs one; a reader builds a `String` only
/// for a field it needs as text. Fields are read in order (`forEachField`); `name(at:)` and
/// `value(at:)` walk to their field, for the rare reader that needs one field again. Value type;
/// `Sendable` like its array.
struct HeaderBlock: Sendable {
    private var bytes: [UInt8] = []
    private(set) var count = 0

    /// Size as SETTINGS_MAX_HEADER_LIST_SIZE counts it (each field's bytes plus 32).
    private(set) var listSize = 0

    private static let lengthsSize = 8

    /// Empties the block, keeping its storage for the next one.
    mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
        count = 0
        listSize = 0
    }

    /// Reserves room for as much as `other` holds, so copying fields out of it allocates once.
    mutating func reserveCapacity(for other: HeaderBlock) {
        bytes.reserveCapacity(other.bytes.count)
    }

    /// Appends every field of `other`, in order.
    mutating func append(contentsOf other: HeaderBlock) {
        bytes.append(contentsOf: other.bytes)
        count += other.count
        listSize += other.listSize
    }

    /// Appends one field given as text.
    mutating func append(name: String, value: String) {
        var name = name, value = value
        name.withUTF8 { name in value.withUTF8 { value in append(name: UnsafeRawBufferPointer(name), value: UnsafeRawBufferPointer(value)) } }
    }

    /// Appends one field whose name is a literal.
    mutating func append(name: StaticString, value: UnsafeRawBufferPointer) {
        append(name: UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount), value: value)
    }

    /// A block of the fields `fields`, in order.
    init(_ fields: [(String, String)]) {
        for (name, value) in fields { append(name: name, value: value) }
    }

    init() {}

    /// Whether `other` holds the same fields, in the same order, byte for byte.
    func hasSameFields(as other: HeaderBlock) -> Bool {
        count == other.count && bytes.withUnsafeBytes { mine in other.bytes.withUnsafeBytes { mine.equals($0) } }
    }

    /// Reserves room for `byteCount` more bytes of fields (lengths included).
    mutating func reserveCapacity(adding byteCount: Int) {
        bytes.reserveCapacity(bytes.count + byteCount)
    }

    /// The bytes the fields take here, lengths included.
    var byteCount: Int { bytes.count }

    /// Appends one field; `listSize` grows by the RFC 9113 field size.
    mutating func append(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        // One append of the whole field (lengths, name, value laid out on the stack first):
        // each `Array.append` checks uniqueness and capacity, and this runs for every field of
        // every HEADERS block received.
        // Typed as `UInt8` elements: `Array.append(contentsOf:)` copies a typed buffer with one
        // `memcpy`, but walks a raw buffer byte by byte (callgrind: ~100 instructions a field).
        let total = Self.lengthsSize + name.count + value.count
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: total) { field in
            let raw = UnsafeMutableRawBufferPointer(field)
            raw.storeBytes(of: UInt32(truncatingIfNeeded: name.count).littleEndian, toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: UInt32(truncatingIfNeeded: value.count).littleEndian, toByteOffset: 4, as: UInt32.self)
            if let source = name.baseAddress, !name.isEmpty {
                (raw.baseAddress! + Self.lengthsSize).copyMemory(from: source, byteCount: name.count)
            }
            if let source = value.baseAddress, !value.isEmpty {
                (raw.baseAddress! + Self.lengthsSize + name.count).copyMemory(from: source, byteCount: value.count)
            }
            bytes.append(contentsOf: UnsafeBufferPointer(field))
        }
        count += 1
        listSize += name.count + value.count + 32
    }

    /// The name of field `index` as text.
    func name(at index: Int) -> String { text(of: index) { name, _ in name } }

    /// The value of field `index` as text.
    func value(at index: Int) -> String { text(of: index) { _, value in value } }

    private func text(of index: Int, _ part: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> UnsafeRawBufferPointer) -> String {
        var text = ""
        forEachField { i, name, value in
            if i == index { text = String(decoding: part(name, value), as: UTF8.self) }
        }
        return text
    }

    /// Calls `body` with the index, name and value bytes of each field, in order. The buffers are
    /// valid only during the call.
    func forEachField(_ body: (Int, UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Void) rethrows {
        try bytes.withUnsafeBytes { try Self.walk($0, count: count, body) }
    }

    /// Calls `body` with the value bytes of the first field named `name`, or `nil` if there is
    /// none; the buffer is valid only during the call.
    func withFirstValue<R>(named name: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer?) throws -> R) rethrows -> R {
        try bytes.withUnsafeBytes { raw in
            var found: UnsafeRawBufferPointer?
            Self.walk(raw, count: count) { _, fieldName, value in
                if found == nil, fieldName.equals(name) { found = value }
            }
            return try body(found)
        }
    }

    /// Calls `each` for every field, then `then`, with the bytes pinned throughout: the buffers
    /// given to `each` stay valid until `then` returns (to hand all fields to C at once).
    func forEachFieldAtOnce<R>(_ each: (Int, UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void, then: () -> R) -> R {
        bytes.withUnsafeBytes { raw in
            Self.walk(raw, count: count, each)
            return then()
        }
    }

    private static func walk(
        _ raw: UnsafeRawBufferPointer, count: Int, _ body: (Int, UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Void
    ) rethrows {
        var offset = 0
        for index in 0..<count {
            let nameLength = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
            let valueLength = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)))
            let nameStart = offset + lengthsSize
            let valueStart = nameStart + nameLength
            offset = valueStart + valueLength
            try body(index, UnsafeRawBufferPointer(rebasing: raw[nameStart..<valueStart]), UnsafeRawBufferPointer(rebasing: raw[valueStart..<offset]))
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension UnsafeRawBufferPointer {
    /// Whether these bytes are exactly `other`'s. One `memcmp`: header names and paths are compared
    /// on every request, and the generic element-by-element comparison showed in profiles.
    package func equals(_ other: UnsafeRawBufferPointer) -> Bool {
        guard count == other.count else { return false }
        guard count > 0, let base = baseAddress, let otherBase = other.baseAddress else { return true }
        return memcmp(base, otherBase, count) == 0
    }

    /// Whether these bytes are exactly `literal`'s UTF-8 (the broker compares property keys with
    /// it too: the generic `elementsEqual` walks a `String.UTF8View` byte by byte).
    package func equals(_ literal: StaticString) -> Bool {
        equals(UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
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
            && UnsafeRawBufferPointer(rebasing: self[..<literal.utf8CodeUnitCount]).equals(literal)
    }
}
