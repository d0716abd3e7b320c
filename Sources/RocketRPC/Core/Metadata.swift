/// gRPC metadata: an ordered multimap of lower-cased header names to values.
///
/// Names ending in `-bin` carry binary values, base64-encoded on the wire (emitted without padding,
/// accepted with or without). Other values are ASCII text. Value semantics; `Sendable`.
///
/// A request's metadata on the server starts as the header bytes it arrived in: ``first(_:)`` and
/// ``firstBinary(_:)`` read them in place and build a value only for the field they return; any
/// other use decodes them (and a mutation keeps the decoded form).
public struct Metadata: Sendable, Hashable, Sequence, ExpressibleByDictionaryLiteral, CustomStringConvertible {
    /// One entry, in insertion order.
    public typealias Element = (name: String, value: MetadataValue)
    public typealias Key = String
    public typealias Value = String

    private var entries: [Entry]
    /// Request fields not decoded yet (reserved names are skipped when read); when set, `entries` is empty.
    private var wire: HeaderBlock?

    private struct Entry: Sendable, Hashable {
        var name: String
        var value: MetadataValue
    }

    /// Empty metadata.
    public init() { entries = [] }

    /// Metadata read from request header fields, decoded on demand. The caller leaves out the
    /// protocol's own fields; `-bin` values that are not base64 are skipped when read, as
    /// ``addWireHeader(name:value:)`` skips them.
    init(wireFields: HeaderBlock) {
        entries = []
        // A block of protocol fields alone (a response's `:status` and `content-type`, trailers
        // with `grpc-status`: most of a client's) holds no metadata; not keeping it lets the
        // session reuse its storage for the next block instead of allocating one.
        wire = Self.hasUnreservedField(wireFields) ? wireFields : nil
    }

    private static func hasUnreservedField(_ block: HeaderBlock) -> Bool {
        var found = false
        block.forEachField { _, name, _ in
            if !found, !isReserved(wireName: name) { found = true }
        }
        return found
    }

    /// Every entry, decoding wire fields if there are any.
    private var decoded: [Entry] {
        guard let wire else { return entries }
        var result: [Entry] = []
        wire.forEachField { _, name, value in
            if let entry = Self.wireEntry(name: String(decoding: name, as: UTF8.self), value: String(decoding: value, as: UTF8.self)) {
                result.append(entry)
            }
        }
        return result
    }

    /// Moves undecoded wire fields into `entries`, before a mutation.
    private mutating func materialize() {
        guard wire != nil else { return }
        entries = decoded
        wire = nil
    }

    /// The first entry named `key` (lower-case), reading wire fields in place.
    private func firstEntry(_ key: String) -> Entry? {
        guard let wire else { return entries.first { $0.name == key } }
        var found: Entry?
        var contiguousKey = key
        contiguousKey.withUTF8 { keyBytes in
            wire.forEachField { _, name, value in
                guard found == nil, name.equals(UnsafeRawBufferPointer(keyBytes)) else { return }
                found = Self.wireEntry(name: key, value: String(decoding: value, as: UTF8.self))
            }
        }
        return found
    }

    public static func == (lhs: Metadata, rhs: Metadata) -> Bool { lhs.decoded == rhs.decoded }

    public func hash(into hasher: inout Hasher) { hasher.combine(decoded) }

    /// Text entries in literal order; names are lower-cased.
    public init(dictionaryLiteral elements: (String, String)...) {
        entries = []
        for (name, value) in elements { add(name, value) }
    }

    /// `name` lower-cased; names are usually lower-case already, and then no new string is built.
    private static func key(_ name: String) -> String {
        // Contiguous (native or literal) strings are scanned as a buffer, far faster than through
        // UTF8View's index; `&-` folds the range check into one comparison.
        let hasUpper = name.utf8.withContiguousStorageIfAvailable { bytes in
            var found = false
            for byte in bytes where byte &- UInt8(ascii: "A") < 26 { found = true; break }
            return found
        } ?? name.utf8.contains { $0 &- UInt8(ascii: "A") < 26 }
        return hasUpper ? name.lowercased() : name
    }

    /// Number of entries (a name with several values counts several times).
    public var count: Int { decoded.count }
    public var isEmpty: Bool { wire == nil ? entries.isEmpty : decoded.isEmpty }

    /// Appends a text value. The name is lower-cased.
    public mutating func add(_ name: String, _ value: String) {
        materialize()
        entries.append(Entry(name: Self.key(name), value: .string(value)))
    }

    /// Appends a binary value. The name is lower-cased and should end in `-bin`.
    public mutating func add(_ name: String, binary: [UInt8]) {
        materialize()
        entries.append(Entry(name: Self.key(name), value: .binary(binary)))
    }

    /// Appends every entry of `other`.
    public mutating func add(contentsOf other: Metadata) {
        materialize()
        entries.append(contentsOf: other.decoded)
    }

    /// The first text value for `name`; for a binary value, its base64 text.
    public func first(_ name: String) -> String? {
        firstEntry(Self.key(name)).map { $0.value.description }
    }

    /// Calls `body` with the UTF-8 bytes of what `first(name)` returns (`nil` when absent). A
    /// request's text value is read in place from its header bytes, with no `String` built: the
    /// way for a check that runs on every call (is a client id there, and not blank).
    public func withFirstValueBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer?) throws -> R) rethrows -> R {
        let key = Self.key(name)
        if let wire, !Self.isBinary(key), !Self.isReserved(key) {
            var keyBytes = key
            return try keyBytes.withUTF8 { try wire.withFirstValue(named: UnsafeRawBufferPointer($0), body) }
        }
        guard var text = first(name) else { return try body(nil) }
        return try text.withUTF8 { try body(UnsafeRawBufferPointer($0)) }
    }

    /// The first binary value for `name`; a text value is returned as its UTF-8 bytes.
    public func firstBinary(_ name: String) -> [UInt8]? {
        guard let entry = firstEntry(Self.key(name)) else { return nil }
        switch entry.value {
        case .binary(let b): return b
        case .string(let s): return Array(s.utf8)
        }
    }

    /// All values for `name`, as text (binary values as base64).
    public func values(_ name: String) -> [String] {
        let key = Self.key(name)
        return decoded.filter { $0.name == key }.map { $0.value.description }
    }

    /// Removes every value for `name`.
    public mutating func remove(_ name: String) {
        let key = Self.key(name)
        materialize()
        entries.removeAll { $0.name == key }
    }

    /// Iterates entries in insertion order.
    public func makeIterator() -> some IteratorProtocol<Element> {
        decoded.lazy.map { (name: $0.name, value: $0.value) }.makeIterator()
    }

    public var description: String {
        "[" + decoded.map { "\($0.name): \($0.value)" }.joined(separator: ", ") + "]"
    }

    // MARK: Wire form

    /// Whether `name` ends in `-bin` (a binary field). `String.hasSuffix` took ~100
    /// instructions, and this runs for each value a handler reads on every call.
    static func isBinary(_ name: String) -> Bool {
        name.utf8.withContiguousStorageIfAvailable { bytes in
            bytes.count >= 4 && bytes[bytes.count - 4] == UInt8(ascii: "-") && bytes[bytes.count - 3] == UInt8(ascii: "b")
                && bytes[bytes.count - 2] == UInt8(ascii: "i") && bytes[bytes.count - 1] == UInt8(ascii: "n")
        } ?? name.hasSuffix("-bin")
    }

    /// Whether `name` is a header that belongs to the protocol, never surfaced as metadata.
    static func isReserved(_ name: String) -> Bool {
        name.utf8.withContiguousStorageIfAvailable { isReserved(wireName: UnsafeRawBufferPointer($0)) }
            ?? Array(name.utf8).withUnsafeBytes { isReserved(wireName: $0) }
    }

    /// ``isReserved(_:)`` for a field name's bytes (as received: no string is built).
    static func isReserved(wireName name: UnsafeRawBufferPointer) -> Bool {
        // Every call's metadata passes through here, and custom names (`x-…`, `authorization`)
        // are the common case: the first byte rules most of them out before any comparison.
        switch name.first {
        case UInt8(ascii: ":"): return true
        case UInt8(ascii: "c"), UInt8(ascii: "t"), UInt8(ascii: "g"), UInt8(ascii: "h"): break
        default: return false
        }
        return name.equals("content-type") || name.equals("te") || name.equals("grpc-timeout") || name.equals("grpc-encoding")
            || name.equals("grpc-accept-encoding") || name.equals("grpc-status") || name.equals("grpc-message")
            || name.equals("content-length") || name.equals("connection") || name.equals("host")
    }

    /// Adds a header received from the wire, decoding `-bin` values; reserved names are skipped.
    mutating func addWireHeader(name: String, value: String) {
        guard let entry = Self.wireEntry(name: name, value: value) else { return }
        materialize()
        entries.append(entry)
    }

    /// The entry a received header field stands for: `nil` for reserved names and for `-bin`
    /// values that are not base64.
    private static func wireEntry(name: String, value: String) -> Entry? {
        guard !isReserved(name) else { return nil }
        guard name.hasSuffix("-bin") else { return Entry(name: name, value: .string(value)) }
        return Base64.decode(value).map { Entry(name: name, value: .binary($0)) }
    }

    /// The entries as HTTP/2 header fields, `-bin` values base64-encoded without padding.
    /// Reserved names are dropped so user metadata cannot forge protocol headers.
    func appendWireHeaders(to headers: inout [(String, String)]) {
        forEachWireHeader { headers.append(($0, $1)) }
    }

    /// Which entries storage a value holds: equal identities mean equal entries for as long as
    /// one of the values is alive (see ``RequestHeaderCache``). `nil` for metadata still in the
    /// wire form it arrived in.
    /// (`@unchecked Sendable`: the address is compared, never dereferenced.)
    struct EntriesIdentity: Equatable, @unchecked Sendable {
        let address: UnsafeRawPointer?
        let count: Int
    }

    var entriesIdentity: EntriesIdentity? {
        guard wire == nil else { return nil }
        return entries.withUnsafeBufferPointer { EntriesIdentity(address: UnsafeRawPointer($0.baseAddress), count: $0.count) }
    }

    /// ``appendWireHeaders(to:)`` for a request's header block.
    func appendWireHeaders(to headers: inout HeaderBlock) {
        forEachWireHeader { headers.append(name: $0, value: $1) }
    }

    private func forEachWireHeader(_ body: (String, String) -> Void) {
        for entry in decoded where !Metadata.isReserved(entry.name) {
            switch entry.value {
            case .binary(let b):
                body(entry.name, Base64.encode(b, padded: false))
            case .string(let s):
                if Metadata.isBinary(entry.name) {
                    body(entry.name, Base64.encode(Array(s.utf8), padded: false))
                } else {
                    body(entry.name, s)
                }
            }
        }
    }
}
