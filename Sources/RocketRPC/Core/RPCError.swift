/// A non-OK gRPC status: what a failed call throws on the client and what a handler throws on the server.
///
/// On the server, a handler that throws an `RPCError` ends its call with exactly that code, message and
/// trailing metadata; any other error becomes `UNKNOWN` with the error's description.
public struct RPCError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The status code. Never `.ok` for an error the runtime produces.
    public var code: StatusCode
    /// Human-readable detail, carried percent-encoded in `grpc-message`.
    public var message: String
    /// Trailing metadata that came with (or should go with) the status.
    public var metadata: Metadata

    public init(code: StatusCode, message: String, metadata: Metadata = Metadata()) {
        self.code = code
        self.message = message
        self.metadata = metadata
    }

    public var description: String {
        message.isEmpty ? code.name : "\(code.name): \(message)"
    }
}
