/// gRPC metadata: an ordered multimap of lower-cased header names to values.
///
/// Names ending in `-bin` carry binary values, base64-encoded on the wire (emitted without padding,
/// accepted with or without). Other values are ASCII text. Value semantics; `Sendable`.
public struct Metadata: Sendable, Hashable, Sequence, ExpressibleByDictionaryLiteral, CustomStringConvertible {
    /// One entry, in insertion order.
    public typealias Element = (name: String, value: MetadataValue)
    public typealias Key = String
    public typealias Value = String

    private var entries: [Entry]

    private struct Entry: Sendable, Hashable {
        var name: String
        var value: MetadataValue
    }

    /// Empty metadata.
    public init() { entries = [] }

    /// Text entries in literal order; names are lower-cased.
    public init(dictionaryLiteral elements: (String, String)...) {
        entries = []
        for (name, value) in elements { add(name, value) }
    }

    /// Number of entries (a name with several values counts several times).
    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }

    /// Appends a text value. The name is lower-cased.
    public mutating func add(_ name: String, _ value: String) {
        entries.append(Entry(name: name.lowercased(), value: .string(value)))
    }

    /// Appends a binary value. The name is lower-cased and should end in `-bin`.
    public mutating func add(_ name: String, binary: [UInt8]) {
        entries.append(Entry(name: name.lowercased(), value: .binary(binary)))
    }

    /// Appends every entry of `other`.
    public mutating func add(contentsOf other: Metadata) {
        entries.append(contentsOf: other.entries)
    }

    /// The first text value for `name`; for a binary value, its base64 text.
    public func first(_ name: String) -> String? {
        let key = name.lowercased()
        return entries.first { $0.name == key }.map { $0.value.description }
    }

    /// The first binary value for `name`; a text value is returned as its UTF-8 bytes.
    public func firstBinary(_ name: String) -> [UInt8]? {
        let key = name.lowercased()
        guard let entry = entries.first(where: { $0.name == key }) else { return nil }
        switch entry.value {
        case .binary(let b): return b
        case .string(let s): return Array(s.utf8)
        }
    }

    /// All values for `name`, as text (binary values as base64).
    public func values(_ name: String) -> [String] {
        let key = name.lowercased()
        return entries.filter { $0.name == key }.map { $0.value.description }
    }

    /// Removes every value for `name`.
    public mutating func remove(_ name: String) {
        let key = name.lowercased()
        entries.removeAll { $0.name == key }
    }

    /// Iterates entries in insertion order.
    public func makeIterator() -> some IteratorProtocol<Element> {
        entries.lazy.map { (name: $0.name, value: $0.value) }.makeIterator()
    }

    public var description: String {
        "[" + entries.map { "\($0.name): \($0.value)" }.joined(separator: ", ") + "]"
    }

    // MARK: Wire form

    /// Headers that belong to the protocol, never surfaced as metadata.
    static func isReserved(_ name: String) -> Bool {
        if name.hasPrefix(":") { return true }
        switch name {
        case "content-type", "te", "grpc-timeout", "grpc-encoding", "grpc-accept-encoding",
            "grpc-status", "grpc-message", "content-length", "connection", "host":
            return true
        default:
            return false
        }
    }

    /// Adds a header received from the wire, decoding `-bin` values; reserved names are skipped.
    mutating func addWireHeader(name: String, value: String) {
        guard !Metadata.isReserved(name) else { return }
        if name.hasSuffix("-bin") {
            if let bytes = Base64.decode(value) {
                entries.append(Entry(name: name, value: .binary(bytes)))
            }
        } else {
            entries.append(Entry(name: name, value: .string(value)))
        }
    }

    /// The entries as HTTP/2 header fields, `-bin` values base64-encoded without padding.
    /// Reserved names are dropped so user metadata cannot forge protocol headers.
    func appendWireHeaders(to headers: inout [(String, String)]) {
        for entry in entries where !Metadata.isReserved(entry.name) {
            switch entry.value {
            case .binary(let b):
                headers.append((entry.name, Base64.encode(b, padded: false)))
            case .string(let s):
                if entry.name.hasSuffix("-bin") {
                    headers.append((entry.name, Base64.encode(Array(s.utf8), padded: false)))
                } else {
                    headers.append((entry.name, s))
                }
            }
        }
    }
}
