/// Per-call settings on the client.
public struct CallOptions: Sendable {
    /// The call fails with `DEADLINE_EXCEEDED` after this long; sent to the server as `grpc-timeout`.
    /// `nil` means no deadline.
    public var timeout: Duration?
    /// Request metadata (custom HTTP/2 headers). Names ending in `-bin` are sent base64-encoded.
    public var metadata: Metadata
    /// When `true` a call made while the channel is not connected waits (bounded by `timeout`) for a
    /// connection instead of failing fast with `UNAVAILABLE`.
    public var waitForReady: Bool
    /// Compression for request messages (`nil` or `.identity`: none).
    public var compression: CompressionAlgorithm?
    /// Largest response message accepted; `nil` means the channel's configured limit.
    public var maxReceiveMessageSize: Int?

    public init(
        timeout: Duration? = nil,
        metadata: Metadata = [:],
        waitForReady: Bool = false,
        compression: CompressionAlgorithm? = nil,
        maxReceiveMessageSize: Int? = nil
    ) {
        self.timeout = timeout
        self.metadata = metadata
        self.waitForReady = waitForReady
        self.compression = compression
        self.maxReceiveMessageSize = maxReceiveMessageSize
    }

    /// Default options: no deadline, no metadata, fail fast, no compression.
    public static var defaults: CallOptions { CallOptions() }
}
