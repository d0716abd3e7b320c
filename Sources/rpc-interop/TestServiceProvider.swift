import RocketRPC

/// `grpc.testing.TestService` as gRPC's interop specification describes it: payloads of zeros of
/// the requested sizes, echoed statuses and metadata, compression on request.
///
/// `UnaryCall` does nothing that waits, so it is registered as an immediate handler
/// (``RPCRouter/unary(_:immediate:)``, the way the broker serves `SendMessage`): answered on the
/// event loop inside the read, with no task. `immediateUnary: false` keeps the generated async
/// registration, for measuring that path; every other method always uses it.
struct TestServiceProvider: Grpc_Testing_TestService.ServiceProtocol {
    static let echoInitial = "x-grpc-test-echo-initial"
    static let echoTrailing = "x-grpc-test-echo-trailing-bin"

    var immediateUnary = true

    func emptyCall(request: Grpc_Testing_Empty, context: ServerContext) async throws -> Grpc_Testing_Empty {
        echoMetadata(context)
        return Grpc_Testing_Empty()
    }

    func register(into router: inout RPCRouter) {
        registerMethods(into: &router)
        guard immediateUnary else { return }
        router.unary(Grpc_Testing_TestService.Method.unaryCall, immediate: {
            (request: Grpc_Testing_SimpleRequest, context: ServerContext) -> ImmediateAnswer<Grpc_Testing_SimpleResponse> in
            .now(try self.answerUnary(request, context: context))
        })
    }

    func unaryCall(request: Grpc_Testing_SimpleRequest, context: ServerContext) async throws -> Grpc_Testing_SimpleResponse {
        try answerUnary(request, context: context)
    }

    func answerUnary(_ request: Grpc_Testing_SimpleRequest, context: ServerContext) throws -> Grpc_Testing_SimpleResponse {
        echoMetadata(context)
        try checkCompression(expected: request.expectCompressed?.value, context: context)
        if let status = request.responseStatus, status.code != 0 {
            throw RPCError(code: StatusCode(rawValue: Int(status.code)) ?? .unknown, message: status.message)
        }
        if request.responseCompressed?.value == true {
            context.setResponseCompression(.gzip)
        }
        return Grpc_Testing_SimpleResponse(payload: zeros(Int(request.responseSize)))
    }

    func cacheableUnaryCall(request: Grpc_Testing_SimpleRequest, context: ServerContext) async throws -> Grpc_Testing_SimpleResponse {
        try await unaryCall(request: request, context: context)
    }

    func streamingOutputCall(
        request: Grpc_Testing_StreamingOutputCallRequest,
        response: ResponseWriter<Grpc_Testing_StreamingOutputCallResponse>,
        context: ServerContext
    ) async throws {
        echoMetadata(context)
        try await respond(to: request, with: response, context: context)
    }

    func streamingInputCall(requests: RequestStream<Grpc_Testing_StreamingInputCallRequest>, context: ServerContext) async throws -> Grpc_Testing_StreamingInputCallResponse {
        var total = 0
        for try await request in requests {
            try checkCompression(expected: request.expectCompressed?.value, context: context)
            total += request.payload?.body.count ?? 0
        }
        return Grpc_Testing_StreamingInputCallResponse(aggregatedPayloadSize: Int32(total))
    }

    func fullDuplexCall(
        requests: RequestStream<Grpc_Testing_StreamingOutputCallRequest>,
        response: ResponseWriter<Grpc_Testing_StreamingOutputCallResponse>,
        context: ServerContext
    ) async throws {
        echoMetadata(context)
        for try await request in requests {
            try await respond(to: request, with: response, context: context)
        }
    }

    func halfDuplexCall(
        requests: RequestStream<Grpc_Testing_StreamingOutputCallRequest>,
        response: ResponseWriter<Grpc_Testing_StreamingOutputCallResponse>,
        context: ServerContext
    ) async throws {
        var buffered: [Grpc_Testing_StreamingOutputCallRequest] = []
        for try await request in requests { buffered.append(request) }
        for request in buffered { try await respond(to: request, with: response, context: context) }
    }

    func unimplementedCall(request: Grpc_Testing_Empty, context: ServerContext) async throws -> Grpc_Testing_Empty {
        throw RPCError(code: .unimplemented, message: "grpc.testing.TestService/UnimplementedCall is not implemented, on purpose")
    }

    private func respond(
        to request: Grpc_Testing_StreamingOutputCallRequest,
        with response: ResponseWriter<Grpc_Testing_StreamingOutputCallResponse>,
        context: ServerContext
    ) async throws {
        if let status = request.responseStatus, status.code != 0 {
            throw RPCError(code: StatusCode(rawValue: Int(status.code)) ?? .unknown, message: status.message)
        }
        for parameters in request.responseParameters {
            if parameters.intervalUs > 0 {
                try await Task.sleep(for: .microseconds(Int(parameters.intervalUs)))
            }
            if parameters.compressed?.value == true { context.setResponseCompression(.gzip) }
            try await response.write(Grpc_Testing_StreamingOutputCallResponse(payload: zeros(Int(parameters.size))))
        }
    }

    private func zeros(_ size: Int) -> Grpc_Testing_Payload {
        Grpc_Testing_Payload(type: .compressable, body: [UInt8](repeating: 0, count: max(0, size)))
    }

    /// `expect_compressed`: the server verifies how the client sent the request.
    private func checkCompression(expected: Bool?, context: ServerContext) throws {
        guard let expected else { return }
        let compressed = context.requestCompression.map { $0 != .identity } ?? false
        if expected && !compressed {
            throw RPCError(code: .invalidArgument, message: "expected a compressed request")
        }
        if !expected && compressed {
            throw RPCError(code: .invalidArgument, message: "expected an uncompressed request")
        }
    }

    private func echoMetadata(_ context: ServerContext) {
        if let initial = context.requestMetadata.first(Self.echoInitial) {
            context.setResponseMetadata([Self.echoInitial: initial])
        }
        if let trailing = context.requestMetadata.firstBinary(Self.echoTrailing) {
            var metadata = Metadata()
            metadata.add(Self.echoTrailing, binary: trailing)
            context.setTrailingMetadata(metadata)
        }
    }
}
