import RocketRPC
import Synchronization

// RocketMQAdmin, in layers (each usable alone):
//   schema   DescriptorPool ← ReflectionClient (server reflection) | ProtoSourceCompiler (protoc)
//            | DescriptorPool(embedded:) (generated code); SchemaSource picks one and loads lazily.
//   values   DynamicMessage/FieldValue; WireCodec (binary), JSONMapping (proto3 JSON),
//            TextFormat/TextFormatParser, SchemaPrinter (describe).
//   calls    DynamicInvoker over an RPCChannel with RawMessage bytes; RichStatus for error details.
// mqadmin's generic mode is these layers plus grpcurl's flags, output and exit codes.

/// Calls any method of any server with ``DynamicMessage``s: the method and its types come from a
/// ``DescriptorPool``, the bytes travel as ``RawMessage``s over an `RPCChannel`.
///
/// All four call kinds go through one bidirectional stream: on the wire a unary call is a stream
/// with one message each way, so the server cannot tell the difference, and one code path reports
/// headers, every response as it arrives, trailers and status alike. Sendable.
public struct DynamicInvoker: Sendable {
    /// What happened during a call, in order, for callers that print as they go (`mqadmin -v`).
    public enum Event: Sendable {
        /// The response headers' custom metadata.
        case headers(Metadata)
        /// One response message.
        case response(DynamicMessage)
    }

    /// The end of a call.
    public struct Outcome: Sendable {
        /// Response headers (empty when the call failed before the server sent any).
        public var headers: Metadata
        /// Every response, in order.
        public var responses: [DynamicMessage]
        /// Trailing metadata.
        public var trailers: Metadata
        /// `nil` for OK; otherwise the call's status.
        public var error: RPCError?
        /// How many requests were sent.
        public var requestCount: Int
    }

    /// The channel calls go over.
    public let channel: RPCChannel
    /// Resolves request and response types.
    public let pool: DescriptorPool

    /// An invoker for the methods in `pool`, calling over `channel` (which the caller owns and closes).
    public init(channel: RPCChannel, pool: DescriptorPool) {
        self.channel = channel
        self.pool = pool
    }

    /// The request and response types of `method`.
    /// - Throws: ``AdminError/invalidDescriptor(_:)`` when the pool lacks them.
    public func types(of method: ServiceDescriptor.Method) throws(AdminError) -> (request: MessageDescriptor, response: MessageDescriptor) {
        guard let request = pool.message(named: method.inputType) else {
            throw .invalidDescriptor("request type \(method.inputType) of \(method.fullName) is not in the descriptor pool")
        }
        guard let response = pool.message(named: method.outputType) else {
            throw .invalidDescriptor("response type \(method.outputType) of \(method.fullName) is not in the descriptor pool")
        }
        return (request, response)
    }

    /// Calls `method` with `requests` and collects the result. A non-OK status is returned in
    /// ``Outcome/error``, not thrown, so headers and trailers stay visible.
    ///
    /// - Parameter onEvent: called for the headers and for each response as it arrives.
    /// - Throws: ``AdminError`` when a request is of the wrong type or there are more requests than a
    ///   unary or server-streaming method takes, or a response does not decode.
    public func invoke(
        _ method: ServiceDescriptor.Method,
        requests: [DynamicMessage],
        options: CallOptions = CallOptions(),
        onEvent: @Sendable (Event) async throws -> Void = { _ in }
    ) async throws -> Outcome {
        let requestType = try types(of: method).request
        var requests = requests
        if !method.clientStreaming {
            guard requests.count <= 1 else {
                throw AdminError.invalidJSON(path: "", reason: "method \"\(method.fullName)\" is a \(method.serverStreaming ? "server-streaming" : "unary") RPC, but request data contained \(requests.count) messages")
            }
            // grpcurl's rule: a method that takes one request gets an empty one when none is given.
            if requests.isEmpty { requests = [DynamicMessage(descriptor: requestType)] }
        }
        for request in requests where request.descriptor.fullName != requestType.fullName {
            throw AdminError.invalidDescriptor("\(method.fullName) takes \(requestType.fullName), not \(request.descriptor.fullName)")
        }
        return try await invoke(method, options: options, requests: { [requests] writer in
            for request in requests { try await writer.write(request) }
        }, onEvent: onEvent)
    }

    /// Calls `method`, taking requests from `requests` while responses arrive: for client-streaming
    /// and bidirectional calls whose requests are produced over time (`mqadmin -d @` reading stdin).
    /// The request stream half-closes when `requests` returns.
    ///
    /// - Throws: the error `requests` threw (the call is cancelled then), ``AdminError`` when a
    ///   response does not decode.
    public func invoke(
        _ method: ServiceDescriptor.Method,
        options: CallOptions = CallOptions(),
        requests: @escaping @Sendable (DynamicRequestWriter) async throws -> Void,
        onEvent: @Sendable (Event) async throws -> Void = { _ in }
    ) async throws -> Outcome {
        let (requestType, responseType) = try types(of: method)
        let pool = self.pool
        let descriptor = MethodDescriptor(service: method.serviceName, method: method.name)
        let producerFailure = Mutex<(any Error)?>(nil)
        let sent = DynamicRequestWriter.Counter()

        let outcome = try await channel.bidirectionalStreaming(
            descriptor, options: options,
            requests: { (writer: RequestWriter<RawMessage>) in
                do {
                    try await requests(DynamicRequestWriter(writer: writer, requestType: requestType, sent: sent))
                } catch {
                    // A write that fails because the call is over leaves the call's status to speak.
                    if !(error is RPCError) { producerFailure.withLock { $0 = error } }
                    throw error
                }
            },
            handle: { (stream: ResponseStream<RawMessage>) in
                var outcome = Outcome(headers: [:], responses: [], trailers: [:], error: nil, requestCount: 0)
                do {
                    outcome.headers = try await stream.initialMetadata
                    try await onEvent(.headers(outcome.headers))
                } catch is RPCError {
                    // Trailers-only answer: no headers; the status comes from the stream below.
                }
                do {
                    for try await raw in stream {
                        let response = try WireCodec.decode(raw.bytes, as: responseType, pool: pool)
                        outcome.responses.append(response)
                        try await onEvent(.response(response))
                    }
                    outcome.trailers = (try? await stream.trailingMetadata) ?? [:]
                } catch let status as RPCError {
                    outcome.error = status
                    outcome.trailers = status.metadata
                }
                return outcome
            }
        )
        if let failure = producerFailure.withLock({ $0 }) { throw failure }
        var result = outcome
        result.requestCount = sent.count
        return result
    }

    /// Calls `method` with requests given as JSON text (one document, or several concatenated for
    /// client-streaming and bidirectional methods) and returns the responses as JSON texts.
    /// The building block for admin verbs: `try await invoker.invokeJSON("pkg.Svc/Method", json: "{}")`.
    ///
    /// - Throws: ``AdminError`` for unknown methods and bad JSON; `RPCError` for a non-OK status.
    public func invokeJSON(_ methodName: String, json: String, options: CallOptions = CallOptions(), mapping: JSONMapping? = nil) async throws -> [String] {
        let method = try pool.method(methodName)
        let mapping = mapping ?? JSONMapping(pool: pool)
        let requests = try parseRequests(json, for: method, mapping: mapping)
        let outcome = try await invoke(method, requests: requests, options: options)
        if let error = outcome.error { throw error }
        return try outcome.responses.map { response throws(AdminError) in try mapping.string(from: response) }
    }

    /// Parses a stream of JSON documents as requests of `method`.
    public func parseRequests(_ text: String, for method: ServiceDescriptor.Method, mapping: JSONMapping) throws(AdminError) -> [DynamicMessage] {
        let requestType = try types(of: method).request
        var parser = JSONParser(text)
        var requests: [DynamicMessage] = []
        while let value = try parser.next() {
            requests.append(try mapping.decode(value, as: requestType))
        }
        return requests
    }
}
