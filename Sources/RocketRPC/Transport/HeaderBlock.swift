/// One HEADERS block as bytes: one buffer holding, per field, the name's and the value's lengths
/// (4 bytes each, little-endian) followed by the name and value. Received blocks keep what nghttp2
/// delivered; a client's request headers are built this way too (a channel's fixed fields once,
/// copied per call with one `memcpy`, instead of an array of `String` pairs per call).
///
/// Receiving a block costs no allocation once the session's buffer is warm (it is reused block after
/// block), and copying fields out (a request's metadata) costs one; a reader builds a `String` only
/// for a field it needs as text. Fields are read in order (`forEachField`); `name(at:)` and
/// `value(at:)` walk to their field, for the rare reader that needs one field again. Value type
/// (copy on write); `Sendable`.
struct HeaderBlock: Sendable {
    /// The fields are the first `byteCount` bytes of `storage`; the rest is room for more.
    /// Copies share it until one of them writes (copy on write, as `Array` does). Appending a
    /// field writes in place after one uniqueness and capacity check: `Array.append(contentsOf:)`
    /// and `Array.withUnsafeMutableBytes` each cost ~90–160 instructions a call in their own
    /// bookkeeping (callgrind), and this runs for every field of every HEADERS block received.
    private var storage = Storage.empty

    /// The bytes the fields take here, lengths included, and how many fields there are: 32 bits
    /// each (a block is bounded by SETTINGS_MAX_HEADER_LIST_SIZE), so that a block stays three
    /// words. One word more, in every `Metadata` and `RPCError` holding a block, made the compiler
    /// copy and destroy optional errors through the runtime's generic value witnesses.
    private var fieldBytes: UInt32 = 0
    private var fields: UInt32 = 0

    /// The bytes the fields take here, lengths included.
    var byteCount: Int { Int(fieldBytes) }
    var count: Int { Int(fields) }

    /// Size as SETTINGS_MAX_HEADER_LIST_SIZE counts it (each field's bytes plus 32).
    private(set) var listSize = 0

    private static let lengthsSize = 8

    /// Memory no other block writes: a block writes only into storage it alone references.
    private final class Storage: @unchecked Sendable {
        let base: UnsafeMutableRawPointer
        let capacity: Int

        init(capacity: Int) {
            self.capacity = capacity
            base = .allocate(byteCount: max(capacity, 1), alignment: 8)
        }

        deinit { base.deallocate() }

        /// What every empty block shares (never written: no block holds it alone), so that an
        /// empty block allocates nothing.
        static let empty = Storage(capacity: 0)
    }

    /// Empties the block, keeping its storage for the next one.
    mutating func reset() {
        fieldBytes = 0
        fields = 0
        listSize = 0
    }

    /// Reserves room for as much as `other` holds, so copying fields out of it allocates once.
    mutating func reserveCapacity(for other: HeaderBlock) {
        reserveCapacity(adding: other.byteCount)
    }

    /// Reserves room for `byteCount` more bytes of fields (lengths included).
    mutating func reserveCapacity(adding extra: Int) {
        _ = writableBase(adding: extra)
    }

    /// Where the next `extra` bytes go (at `byteCount`), in storage this block alone holds.
    @inline(__always)
    private mutating func writableBase(adding extra: Int) -> UnsafeMutableRawPointer {
        let needed = byteCount + extra
        let unique = isKnownUniquelyReferenced(&storage)
        if unique, needed <= storage.capacity { return storage.base }
        return grow(to: needed, unique: unique)
    }

    /// New storage holding this block's fields, with room for `needed` bytes.
    @inline(never)
    private mutating func grow(to needed: Int, unique: Bool) -> UnsafeMutableRawPointer {
        // Exactly what is asked for the first time (a copy sized for its fields); doubling when
        // this block's own storage is full; sized by what it holds when a copy shares it.
        let old = storage
        let capacity = unique ? max(needed, 2 * old.capacity) : old.capacity == 0 ? needed : max(needed, 256)
        let grown = Storage(capacity: capacity)
        if byteCount > 0 { grown.base.copyMemory(from: old.base, byteCount: byteCount) }
        storage = grown
        return grown.base
    }

    /// Appends every field of `other`, in order.
    mutating func append(contentsOf other: HeaderBlock) {
        guard other.byteCount > 0 else { return }
        let base = writableBase(adding: other.byteCount)
        (base + byteCount).copyMemory(from: other.storage.base, byteCount: other.byteCount)
        fieldBytes += other.fieldBytes
        fields += other.fields
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
        count == other.count && byteCount == other.byteCount
            && withUnsafeFieldBytes { mine in other.withUnsafeFieldBytes { mine.equals($0) } }
    }

    /// Appends one field; `listSize` grows by the RFC 9113 field size.
    mutating func append(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        let total = Self.lengthsSize + name.count + value.count
        let field = writableBase(adding: total) + byteCount
        field.storeBytes(of: UInt32(truncatingIfNeeded: name.count).littleEndian, as: UInt32.self)
        (field + 4).storeBytes(of: UInt32(truncatingIfNeeded: value.count).littleEndian, as: UInt32.self)
        if let source = name.baseAddress, !name.isEmpty {
            (field + Self.lengthsSize).copyMemory(from: source, byteCount: name.count)
        }
        if let source = value.baseAddress, !value.isEmpty {
            (field + Self.lengthsSize + name.count).copyMemory(from: source, byteCount: value.count)
        }
        fieldBytes += UInt32(total)
        fields += 1
        listSize += name.count + value.count + 32
    }

    /// The fields' bytes, lengths included; valid only during the call (the caller holds `self`,
    /// and with it the storage, until the call returns).
    @inline(__always)
    private func withUnsafeFieldBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: storage.base, count: byteCount))
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
        try withUnsafeFieldBytes { try Self.walk($0, count: count, body) }
    }

    /// Calls `body` with the value bytes of the first field named `name`, or `nil` if there is
    /// none; the buffer is valid only during the call.
    func withFirstValue<R>(named name: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer?) throws -> R) rethrows -> R {
        try withUnsafeFieldBytes { raw in
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
        withUnsafeFieldBytes { raw in
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
