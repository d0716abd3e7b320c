/// A message compression algorithm, named as in `grpc-encoding`.
public enum CompressionAlgorithm: String, Sendable, Hashable {
    /// gzip (RFC 1952) per message.
    case gzip
    /// No compression.
    case identity

    /// What this runtime advertises in `grpc-accept-encoding`.
    static let acceptEncodingHeader = "gzip,identity"
}
