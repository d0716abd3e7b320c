/// One metadata value: text, or bytes for names ending in `-bin`.
public enum MetadataValue: Sendable, Hashable, CustomStringConvertible {
    case string(String)
    case binary([UInt8])

    /// The text, or for bytes their padded base64 form.
    public var description: String {
        switch self {
        case .string(let s): s
        case .binary(let b): Base64.encode(b, padded: true)
        }
    }
}
