/// Everything RocketMQAdmin can fail with, apart from a call's own gRPC status (thrown as
/// `RocketRPC.RPCError`). Each case carries what a user needs to fix the input.
///
/// `mqadmin` maps these to grpcurl's exit codes in one place (`ExitStatus`).
public enum AdminError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No service, message, enum or method has this fully qualified name.
    case unknownSymbol(String)
    /// The server (or the loaded files) does not expose this service.
    case unknownService(String)
    /// The service exists but has no such method.
    case unknownMethod(service: String, method: String)
    /// A method name that is neither `pkg.Service/Method` nor `pkg.Service.Method`.
    case invalidMethodName(String)
    /// A descriptor is inconsistent (a type it names is missing, a map entry is malformed, ...).
    case invalidDescriptor(String)
    /// Bytes are not a valid encoding of the message type.
    case malformedWire(message: String, reason: String)
    /// The text is not JSON at all.
    case malformedJSON(String)
    /// The JSON is well formed but does not fit the message type; `path` is where (`.payload.body`).
    case invalidJSON(path: String, reason: String)
    /// An `Any` names a type the descriptor pool does not have (fetch it, for example with
    /// ``SchemaSource/loadType(_:)``, and format again).
    case unknownAnyType(String)
    /// Protobuf text format could not be parsed.
    case malformedText(String)
    /// Server reflection failed or answered with an error.
    case reflection(String)
    /// `protoc` could not compile the given `.proto` files.
    case protoCompilation(String)

    public var description: String {
        switch self {
        case .unknownSymbol(let name): "symbol not found: \(name)"
        case .unknownService(let name): "target server does not expose service \"\(name)\""
        case .unknownMethod(let service, let method): "service \"\(service)\" does not include a method named \"\(method)\""
        case .invalidMethodName(let name): "given method name \"\(name)\" is not in expected format: 'service/method' or 'service.method'"
        case .invalidDescriptor(let reason): "invalid descriptor: \(reason)"
        case .malformedWire(let message, let reason): "cannot decode \(message): \(reason)"
        case .malformedJSON(let reason): "malformed JSON: \(reason)"
        case .invalidJSON(let path, let reason): path.isEmpty ? reason : "\(path): \(reason)"
        case .unknownAnyType(let name): "google.protobuf.Any holds \(name), which is not in the descriptor pool"
        case .malformedText(let reason): "malformed text format: \(reason)"
        case .reflection(let reason): "server reflection: \(reason)"
        case .protoCompilation(let reason): "cannot compile .proto files: \(reason)"
        }
    }
}
