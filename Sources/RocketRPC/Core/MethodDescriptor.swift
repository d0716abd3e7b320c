/// Names one RPC method: the fully qualified service and the method within it.
///
/// The wire form is the HTTP/2 `:path`, `"/" + service + "/" + method`.
public struct MethodDescriptor: Sendable, Hashable, CustomStringConvertible {
    /// Fully qualified service name, for example `grpc.health.v1.Health`.
    public let service: String
    /// Method name within the service, for example `Check`.
    public let method: String
    /// The HTTP/2 `:path` of this method: `/service/method`. Stored: every call sends it, and
    /// building it per call cost a client four allocations.
    public let path: String

    public init(service: String, method: String) {
        self.service = service
        self.method = method
        self.path = "/\(service)/\(method)"
    }

    public var description: String { path }

    /// Parses a `:path` of the form `/service/method`; `nil` if it has any other shape.
    init?(path: Substring) {
        guard path.first == "/" else { return nil }
        let rest = path.dropFirst()
        guard let slash = rest.firstIndex(of: "/") else { return nil }
        let service = rest[..<slash]
        let method = rest[rest.index(after: slash)...]
        guard !service.isEmpty, !method.isEmpty, !method.contains("/") else { return nil }
        self.init(service: String(service), method: String(method))
    }
}
