import RocketRPC

/// The client side of gRPC's interop test cases (the names and expectations of grpc's
/// interop test descriptions), run against any `grpc.testing.TestService` server.
struct InteropTestCases {
    let channel: RPCChannel
    var client: Grpc_Testing_TestService.Client { Grpc_Testing_TestService.Client(channel: channel) }

    static let names = [
        "empty_unary", "large_unary", "client_streaming", "server_streaming", "ping_pong", "empty_stream",
        "custom_metadata", "status_code_and_message", "special_status_message", "unimplemented_method",
        "unimplemented_service", "cancel_after_begin", "cancel_after_first_response", "timeout_on_sleeping_server",
        "client_compressed_unary", "server_compressed_unary", "client_compressed_streaming",
        "server_compressed_streaming", "max_message_size",
    ]

    func run(_ name: String) async throws {
        switch name {
        case "empty_unary": try await emptyUnary()
        case "large_unary": try await largeUnary()
        case "client_streaming": try await clientStreaming()
        case "server_streaming": try await serverStreaming()
        case "ping_pong": try await pingPong()
        case "empty_stream": try await emptyStream()
        case "custom_metadata": try await customMetadata()
        case "status_code_and_message": try await statusCodeAndMessage("test status message")
        case "special_status_message": try await statusCodeAndMessage("\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n")
        case "unimplemented_method": try await unimplementedMethod()
        case "unimplemented_service": try await unimplementedService()
        case "cancel_after_begin": try await cancelAfterBegin()
        case "cancel_after_first_response": try await cancelAfterFirstResponse()
        case "timeout_on_sleeping_server": try await timeoutOnSleepingServer()
        case "client_compressed_unary": try await clientCompressedUnary()
        case "server_compressed_unary": try await serverCompressedUnary()
        case "client_compressed_streaming": try await clientCompressedStreaming()
        case "server_compressed_streaming": try await serverCompressedStreaming()
        case "max_message_size": try await maxMessageSize()
        default: throw InteropFailure("unknown test case \(name); known: \(Self.names.joined(separator: ", "))")
        }
    }

    // MARK: cases

    func emptyUnary() async throws {
        let response = try await client.emptyCall(Grpc_Testing_Empty())
        try check(response == Grpc_Testing_Empty(), "empty response")
    }

    func largeUnary() async throws {
        let response = try await client.unaryCall(simpleRequest())
        try checkPayload(response.payload, size: 314_159)
    }

    func clientStreaming() async throws {
        let response = try await client.streamingInputCall { writer in
            for size in [27_182, 8, 1_828, 45_904] {
                try await writer.write(Grpc_Testing_StreamingInputCallRequest(payload: zeros(size)))
            }
        }
        try check(response.aggregatedPayloadSize == 74_922, "aggregated size \(response.aggregatedPayloadSize) != 74922")
    }

    func serverStreaming() async throws {
        let sizes = [31_415, 9, 2_653, 58_979]
        let request = Grpc_Testing_StreamingOutputCallRequest(
            responseType: .compressable,
            responseParameters: sizes.map { Grpc_Testing_ResponseParameters(size: Int32($0)) }
        )
        let received = try await client.streamingOutputCall(request) { responses in
            var received: [Int] = []
            for try await response in responses { received.append(response.payload?.body.count ?? -1) }
            return received
        }
        try check(received == sizes, "response sizes \(received) != \(sizes)")
    }

    func pingPong() async throws {
        let requestSizes = [27_182, 8, 1_828, 45_904]
        let responseSizes = [31_415, 9, 2_653, 58_979]
        let (turns, turn) = AsyncStream<Void>.makeStream()
        let received = try await client.fullDuplexCall(requests: { writer in
            var iterator = turns.makeAsyncIterator()
            for (requestSize, responseSize) in zip(requestSizes, responseSizes) {
                try await writer.write(Grpc_Testing_StreamingOutputCallRequest(
                    responseType: .compressable,
                    responseParameters: [Grpc_Testing_ResponseParameters(size: Int32(responseSize))],
                    payload: zeros(requestSize)
                ))
                // The next ping goes only after its pong arrived.
                guard await iterator.next() != nil else { return }
            }
        }, handle: { responses in
            var received: [Int] = []
            for try await response in responses {
                received.append(response.payload?.body.count ?? -1)
                turn.yield()
            }
            turn.finish()
            return received
        })
        try check(received == responseSizes, "ping-pong sizes \(received) != \(responseSizes)")
    }

    func emptyStream() async throws {
        let count = try await client.fullDuplexCall(requests: { _ in }, handle: { responses in
            var count = 0
            for try await _ in responses { count += 1 }
            return count
        })
        try check(count == 0, "empty stream produced \(count) responses")
    }

    func customMetadata() async throws {
        let initialValue = "test_initial_metadata_value"
        let trailingValue: [UInt8] = [0xAB, 0xAB, 0xAB]
        var options = CallOptions()
        options.metadata.add(TestServiceProvider.echoInitial, initialValue)
        options.metadata.add(TestServiceProvider.echoTrailing, binary: trailingValue)

        let unary: UnaryResponse<Grpc_Testing_SimpleResponse> = try await channel.unary(
            Grpc_Testing_TestService.Method.unaryCall, request: simpleRequest(), options: options)
        try checkPayload(unary.message.payload, size: 314_159)
        try check(unary.initialMetadata.first(TestServiceProvider.echoInitial) == initialValue, "unary initial metadata not echoed: \(unary.initialMetadata)")
        try check(unary.trailingMetadata.firstBinary(TestServiceProvider.echoTrailing) == trailingValue, "unary trailing metadata not echoed: \(unary.trailingMetadata)")

        let request = Grpc_Testing_StreamingOutputCallRequest(
            responseType: .compressable,
            responseParameters: [Grpc_Testing_ResponseParameters(size: 314_159)],
            payload: zeros(271_828)
        )
        let (initial, trailing) = try await client.fullDuplexCall(options: options, requests: { writer in
            try await writer.write(request)
        }, handle: { responses in
            for try await response in responses { try checkPayload(response.payload, size: 314_159) }
            return (try await responses.initialMetadata, try await responses.trailingMetadata)
        })
        try check(initial.first(TestServiceProvider.echoInitial) == initialValue, "streaming initial metadata not echoed: \(initial)")
        try check(trailing.firstBinary(TestServiceProvider.echoTrailing) == trailingValue, "streaming trailing metadata not echoed: \(trailing)")
    }

    func statusCodeAndMessage(_ message: String) async throws {
        var request = Grpc_Testing_SimpleRequest()
        request.responseStatus = Grpc_Testing_EchoStatus(code: 2, message: message)
        try await expectStatus(.unknown, message: message) { _ = try await client.unaryCall(request) }

        let streamRequest = Grpc_Testing_StreamingOutputCallRequest(responseStatus: Grpc_Testing_EchoStatus(code: 2, message: message))
        try await expectStatus(.unknown, message: message) {
            _ = try await client.fullDuplexCall(requests: { writer in try await writer.write(streamRequest) }, handle: { responses in
                for try await _ in responses {}
                return 0
            })
        }
    }

    func unimplementedMethod() async throws {
        try await expectStatus(.unimplemented) { _ = try await client.unimplementedCall(Grpc_Testing_Empty()) }
    }

    func unimplementedService() async throws {
        let other = Grpc_Testing_UnimplementedService.Client(channel: channel)
        try await expectStatus(.unimplemented) { _ = try await other.unimplementedCall(Grpc_Testing_Empty()) }
    }

    func cancelAfterBegin() async throws {
        let client = self.client
        let call = Task {
            try await client.streamingInputCall { _ in
                try await Task.sleep(for: .seconds(30))
            }
        }
        try await Task.sleep(for: .milliseconds(100))
        call.cancel()
        try await expectStatus(.cancelled) { _ = try await call.value }
    }

    func cancelAfterFirstResponse() async throws {
        let client = self.client
        let (firstResponse, signal) = AsyncStream<Void>.makeStream()
        let call = Task {
            try await client.fullDuplexCall(requests: { writer in
                try await writer.write(Grpc_Testing_StreamingOutputCallRequest(
                    responseType: .compressable,
                    responseParameters: [Grpc_Testing_ResponseParameters(size: 31_415)],
                    payload: zeros(27_182)
                ))
                try await Task.sleep(for: .seconds(30))
            }, handle: { responses in
                var count = 0
                for try await _ in responses {
                    count += 1
                    signal.yield()
                }
                return count
            })
        }
        for await _ in firstResponse { break }
        call.cancel()
        try await expectStatus(.cancelled) { _ = try await call.value }
    }

    func timeoutOnSleepingServer() async throws {
        var options = CallOptions()
        options.timeout = .milliseconds(1)
        try await expectStatus(.deadlineExceeded) {
            _ = try await client.fullDuplexCall(options: options, requests: { writer in
                try await writer.write(Grpc_Testing_StreamingOutputCallRequest(payload: zeros(27_182)))
                try await Task.sleep(for: .seconds(30))
            }, handle: { responses in
                for try await _ in responses {}
                return 0
            })
        }
    }

    func clientCompressedUnary() async throws {
        var probe = simpleRequest()
        probe.expectCompressed = Grpc_Testing_BoolValue(value: true)
        try await expectStatus(.invalidArgument) { _ = try await client.unaryCall(probe) }

        var compressed = CallOptions()
        compressed.compression = .gzip
        try checkPayload(try await client.unaryCall(probe, options: compressed).payload, size: 314_159)

        var plain = simpleRequest()
        plain.expectCompressed = Grpc_Testing_BoolValue(value: false)
        try checkPayload(try await client.unaryCall(plain).payload, size: 314_159)
    }

    func serverCompressedUnary() async throws {
        for compressed in [true, false] {
            var request = simpleRequest()
            request.responseCompressed = Grpc_Testing_BoolValue(value: compressed)
            try checkPayload(try await client.unaryCall(request).payload, size: 314_159)
        }
    }

    func clientCompressedStreaming() async throws {
        var options = CallOptions()
        options.compression = .gzip
        let response = try await client.streamingInputCall(options: options) { writer in
            for size in [27_182, 45_904] {
                try await writer.write(Grpc_Testing_StreamingInputCallRequest(
                    payload: zeros(size), expectCompressed: Grpc_Testing_BoolValue(value: true)))
            }
        }
        try check(response.aggregatedPayloadSize == 73_086, "aggregated size \(response.aggregatedPayloadSize) != 73086")
    }

    func serverCompressedStreaming() async throws {
        let request = Grpc_Testing_StreamingOutputCallRequest(responseParameters: [
            Grpc_Testing_ResponseParameters(size: 31_415, compressed: Grpc_Testing_BoolValue(value: true)),
            Grpc_Testing_ResponseParameters(size: 92_653, compressed: Grpc_Testing_BoolValue(value: false)),
        ])
        let sizes = try await client.streamingOutputCall(request) { responses in
            var sizes: [Int] = []
            for try await response in responses { sizes.append(response.payload?.body.count ?? -1) }
            return sizes
        }
        try check(sizes == [31_415, 92_653], "sizes \(sizes)")
    }

    /// Not one of grpc's named cases: both directions enforce the 4 MiB default receive limit.
    func maxMessageSize() async throws {
        var tooLargeResponse = simpleRequest()
        tooLargeResponse.responseSize = 5 << 20
        try await expectStatus(.resourceExhausted) { _ = try await client.unaryCall(tooLargeResponse) }

        var tooLargeRequest = simpleRequest()
        tooLargeRequest.payload = zeros(5 << 20)
        try await expectStatus(.resourceExhausted) { _ = try await client.unaryCall(tooLargeRequest) }

        // Just under the limit still works, and the connection survived the failures above.
        var large = simpleRequest()
        large.responseSize = (4 << 20) - 64
        try checkPayload(try await client.unaryCall(large).payload, size: (4 << 20) - 64)
    }

    // MARK: helpers

    private func simpleRequest() -> Grpc_Testing_SimpleRequest {
        Grpc_Testing_SimpleRequest(responseType: .compressable, responseSize: 314_159, payload: zeros(271_828))
    }

    private func zeros(_ size: Int) -> Grpc_Testing_Payload {
        Grpc_Testing_Payload(type: .compressable, body: [UInt8](repeating: 0, count: size))
    }

    private func checkPayload(_ payload: Grpc_Testing_Payload?, size: Int) throws {
        guard let payload else { throw InteropFailure("response has no payload") }
        try check(payload.body.count == size, "payload size \(payload.body.count) != \(size)")
        try check(payload.body.allSatisfy { $0 == 0 }, "payload is not all zeros")
    }

    private func expectStatus(_ code: StatusCode, message: String? = nil, _ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let error as RPCError {
            try check(error.code == code, "status \(error.code) (\(error.message)) != expected \(code)")
            if let message { try check(error.message == message, "status message \(error.message.debugDescription) != \(message.debugDescription)") }
            return
        }
        throw InteropFailure("call succeeded; expected status \(code)")
    }
}

struct InteropFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func check(_ condition: Bool, _ message: @autoclosure () -> String) throws {
    if !condition { throw InteropFailure(message()) }
}
