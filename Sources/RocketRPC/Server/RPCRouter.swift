import NIOCore
import RocketProto

/// The table of methods a server answers, filled by each ``RPCService``'s `register(into:)`.
///
/// Value type; built once before the server starts and then shared read-only by all connections.
public struct RPCRouter: Sendable {
    var handlers: [String: ServerMethod] = [:]
    var serviceNames: Set<String> = []

    public init() {}

    /// Every registered method, sorted by path.
    public var methods: [MethodDescriptor] {
        handlers.values.map(\.descriptor).sorted { $0.path < $1.path }
    }

    /// Registers a unary method: one request, one response.
    public mutating func unary<Req: ProtoMessage, Resp: ProtoMessage>(
        _ method: MethodDescriptor,
        _ handler: @escaping @Sendable (Req, ServerContext) async throws -> Resp
    ) {
        add(method, singleRequest: true) { call, message in
            let request = try decodeMessage(Req.self, from: try await call.singleMessage(message))
            return try await handler(request, call.context).serializedBytes()
        }
    }

    /// Registers a server-streaming method: one request, any number of responses.
    public mutating func serverStreaming<Req: ProtoMessage, Resp: ProtoMessage>(
        _ method: MethodDescriptor,
        _ handler: @escaping @Sendable (Req, ResponseWriter<Resp>, ServerContext) async throws -> Void
    ) {
        add(method, singleRequest: true) { call, message in
            let request = try decodeMessage(Req.self, from: try await call.singleMessage(message))
            try await handler(request, ResponseWriter(sink: call), call.context)
            return nil
        }
    }

    /// Registers a client-streaming method: any number of requests, one response.
    public mutating func clientStreaming<Req: ProtoMessage, Resp: ProtoMessage>(
        _ method: MethodDescriptor,
        _ handler: @escaping @Sendable (RequestStream<Req>, ServerContext) async throws -> Resp
    ) {
        add(method, singleRequest: false) { call, _ in
            try await handler(RequestStream(source: call), call.context).serializedBytes()
        }
    }

    /// Registers a bidirectional-streaming method: requests and responses flow independently.
    public mutating func bidirectionalStreaming<Req: ProtoMessage, Resp: ProtoMessage>(
        _ method: MethodDescriptor,
        _ handler: @escaping @Sendable (RequestStream<Req>, ResponseWriter<Resp>, ServerContext) async throws -> Void
    ) {
        add(method, singleRequest: false) { call, _ in
            try await handler(RequestStream(source: call), ResponseWriter(sink: call), call.context)
            return nil
        }
    }

    private mutating func add(
        _ method: MethodDescriptor,
        singleRequest: Bool,
        _ run: @escaping @Sendable (ServerCall, ByteBuffer?) async throws -> [UInt8]?
    ) {
        handlers[method.path] = ServerMethod(descriptor: method, takesSingleRequest: singleRequest, run: run)
        serviceNames.insert(method.service)
    }
}
