/// A service and its methods, as declared in a `.proto` file.
public struct ServiceDescriptor: Sendable, Hashable {
    /// One RPC method.
    public struct Method: Sendable, Hashable {
        /// The method's simple name, for example `UnaryCall`.
        public var name: String
        /// Fully qualified service name.
        public var serviceName: String
        /// Fully qualified request type (no leading dot).
        public var inputType: String
        /// Fully qualified response type (no leading dot).
        public var outputType: String
        /// The client sends a stream of requests.
        public var clientStreaming: Bool
        /// The server answers with a stream of responses.
        public var serverStreaming: Bool

        /// `service.Method`, as grpcurl's `list SERVICE` prints it.
        public var fullName: String { "\(serviceName).\(name)" }

        /// The call kind in words.
        public var kind: CallKind {
            switch (clientStreaming, serverStreaming) {
            case (false, false): .unary
            case (false, true): .serverStreaming
            case (true, false): .clientStreaming
            case (true, true): .bidirectionalStreaming
            }
        }
    }

    /// The four gRPC call kinds.
    public enum CallKind: String, Sendable, Hashable {
        case unary, serverStreaming, clientStreaming, bidirectionalStreaming
    }

    /// Fully qualified name, for example `grpc.testing.TestService`.
    public var fullName: String
    /// Methods in declaration order.
    public var methods: [Method]
    /// The `.proto` file that declares it.
    public var fileName: String

    /// The method with this simple name.
    public func method(named name: String) -> Method? { methods.first { $0.name == name } }

    /// The last component of the full name.
    public var name: String { fullName.split(separator: ".").last.map(String.init) ?? fullName }
}
