import NIOCore
import RocketProto

/// The table of methods a server answers, filled by each ``RPCService``'s `register(into:)`.
///
/// Value type; built once before the server starts and then shared read-only by all connections.
public struct RPCRouter: Sendable {
    var handlers: [String: ServerMethod] = [:]
    var serviceNames: Set<String> = []
    /// `handlers` keyed by a hash of the path's bytes, so a request's `:path` is matched without
    /// building a `String` from it.
    private var handlersByPathHash: [UInt64: [(path: [UInt8], method: ServerMethod)]] = [:]

    public init() {}

    /// The method registered for the `:path` bytes `path`, if any.
    func handler(forPath path: UnsafeRawBufferPointer) -> ServerMethod? {
        guard let candidates = handlersByPathHash[Self.hash(path)] else { return nil }
        for candidate in candidates where candidate.path.withUnsafeBytes({ $0.equals(path) }) { return candidate.method }
        return nil
    }

    /// FNV-1a: a few cycles per byte, and paths are short.
    private static func hash<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return hash
    }

    /// Every registered method, sorted by path.
    public var methods: [MethodDescriptor] {
        handlers.values.map(\.descriptor).sorted { $0.path < $1.path }
    }

    // The registration functions are inlinable so that the closures they build are specialized
    // for the generated message types at the call site (the generated `register(into:)`):
    // generic, they paid runtime metadata lookups and value-witness calls on every call.

    /// Registers a unary method: one request, one response.
    @inlinable
    public mutating func unary<Req: ProtoMessage, Resp: ProtoMessage>(
        _ method: MethodDescriptor,
        _ handler: nonisolated(nonsending) @escaping @Sendable (Req, ServerContext) async throws -> Resp
    ) {
        add(method, singleRequest: true) { call in
            let request = try decodeMessage(Req.self, from: try await call.singleMessage())
            return try await handler(request, call).serializedBytes()
        }
    }

    /// Registers a unary method whose handler answers synchronously when it can.
    ///
    /// The handler runs on the connection's event loop, inside the read that completed the
    /// request, so every other call of the connection waits for it: keep it short (the broker's
    /// `SendMessage` appends to its store there, as a handler of `unary(_:_:)` that does not
    /// suspend would), and leave anything that waits — I/O, locks held long, other tasks — to
    /// `.later`. It returns ``ImmediateAnswer/now(_:)`` when the response is
    /// ready (no `Task` is created for the call: the cheapest way to serve a request), or
    /// ``ImmediateAnswer/later(_:)`` with the work that has to wait (run in a task, as a
    /// `unary(_:_:)` handler is), or ``ImmediateAnswer/callback(_:)`` when the answer comes
    /// from a callback (no task at all). A thrown error ends the call as from any handler. With
    /// `ServerConfiguration.runHandlersOnEventLoop` off, the handler runs in the call's task.
    @inlinable
    public mutating func unary<Req: ProtoMessage, Resp: ProtoMessage>(
        _ method: MethodDescriptor,
        immediate handler: @escaping @Sendable (Req, ServerContext) throws -> ImmediateAnswer<Resp>
    ) {
        let answerNow: @Sendable (ServerContext, ByteBuffer) throws -> ErasedAnswer = { call, request in
            let answer = try handler(try decodeMessage(Req.self, from: request), call)
            switch consume answer {
            case .now(let response): return .now(response.serializedBytes())
            case .later(let work): return .later { try await work().serializedBytes() }
            case .callback(let start):
                return .callback { done in start { result in done(result.map { $0.serializedBytes() }) } }
            }
        }
        // Off the event loop the same answer is taken in the call's task.
        add(method, singleRequest: true, { call in try await answerNow(call, try await call.singleMessage()).response() }, answerNow: answerNow)
    }

    /// Registers a server-streaming method: one request, any number of responses.
    @inlinable
    public mutating func serverStreaming<Req: ProtoMessage, Resp: ProtoMessage>(
        _ method: MethodDescriptor,
        _ handler: nonisolated(nonsending) @escaping @Sendable (Req, ResponseWriter<Resp>, ServerContext) async throws -> Void
    ) {
        add(method, singleRequest: true) { call in
            let request = try decodeMessage(Req.self, from: try await call.singleMessage())
            try await handler(request, ResponseWriter(sink: call), call)
            return nil
        }
    }

    /// Registers a client-streaming method: any number of requests, one response.
    @inlinable
    public mutating func clientStreaming<Req: ProtoMessage, Resp: ProtoMessage>(
        _ method: MethodDescriptor,
        _ handler: nonisolated(nonsending) @escaping @Sendable (RequestStream<Req>, ServerContext) async throws -> Resp
    ) {
        add(method, singleRequest: false) { call in
            try await handler(RequestStream(source: call), call).serializedBytes()
        }
    }

    /// Registers a bidirectional-streaming method: requests and responses flow independently.
    @inlinable
    public mutating func bidirectionalStreaming<Req: ProtoMessage, Resp: ProtoMessage>(
        _ method: MethodDescriptor,
        _ handler: nonisolated(nonsending) @escaping @Sendable (RequestStream<Req>, ResponseWriter<Resp>, ServerContext) async throws -> Void
    ) {
        add(method, singleRequest: false) { call in
            try await handler(RequestStream(source: call), ResponseWriter(sink: call), call)
            return nil
        }
    }

    @usableFromInline
    mutating func add(
        _ method: MethodDescriptor,
        singleRequest: Bool,
        _ run: nonisolated(nonsending) @escaping @Sendable (ServerContext) async throws -> [UInt8]?,
        answerNow: (@Sendable (ServerContext, ByteBuffer) throws -> ErasedAnswer)? = nil
    ) {
        let server = ServerMethod(descriptor: method, takesSingleRequest: singleRequest, run: run, answerNow: answerNow)
        handlers[method.path] = server
        let path = Array(method.path.utf8)
        handlersByPathHash[Self.hash(path), default: []].removeAll { $0.path == path }
        handlersByPathHash[Self.hash(path), default: []].append((path, server))
        serviceNames.insert(method.service)
    }
}
