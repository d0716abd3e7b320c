import NIOCore

/// The event-loop side of one client call: request queue, response messages, metadata and status.
///
/// Confined to the connection's event loop; the caller's task reaches it through ``ClientCall``.
/// Every path that ends the call (trailers, RST_STREAM, deadline, cancellation, connection loss)
/// completes `status` exactly once, so nothing awaiting it can hang.
///
/// Stored properties are `@exclusivity(unchecked)`: the object is confined to one event loop and
/// never re-entered while one of its properties is being mutated, so the runtime's dynamic
/// exclusivity checks (measurable on the per-request path) are skipped.
final class ClientStream: InboundWindow {
    @exclusivity(unchecked) var streamID: Int32 = 0
    /// The connection while it holds this stream: set when the stream opens, cleared when the
    /// connection lets it go (closed by nghttp2, stranded by GOAWAY, connection lost). Strong
    /// rather than `weak`: a weak reference gives the connection handler a side-table reference
    /// count, which made every retain and release of it (several per call) the slow kind.
    @exclusivity(unchecked) var connection: ClientConnectionHandler?
    let inbound: InboundMessageBuffer
    let outbound = OutboundDataQueue()
    let eventLoop: any EventLoop
    /// Created only when someone waits for them (streaming calls); a unary call's fast path
    /// (``awaitUnaryOutcome(_:)``) needs neither, which saves two promises per call.
    @exclusivity(unchecked) private var initialMetadataPromise: EventLoopPromise<Metadata>?
    /// Whether the response headers' metadata is settled: `initialMetadata`, or the call's
    /// error in `initialMetadataError`. (Two plain fields rather than an optional `Result`,
    /// which every check copied and destroyed through outlined helpers.)
    @exclusivity(unchecked) private var initialMetadataSettled = false
    @exclusivity(unchecked) private var initialMetadataError: RPCError?
    @exclusivity(unchecked) private var statusPromise: EventLoopPromise<RPCError>?
    /// The final status once the call ended; `.ok` for success. Its `metadata` is the trailing metadata.
    @exclusivity(unchecked) private(set) var finalStatus: RPCError?
    /// Who waits for a unary call's outcome, told once when the call ends.
    @exclusivity(unchecked) private var unaryWaiter: UnaryWaiter?
    @exclusivity(unchecked) private(set) var initialMetadata = Metadata()
    @exclusivity(unchecked) private var headersReceived = false
    @exclusivity(unchecked) private(set) var completed = false
    /// The server provably never processed this stream (REFUSED_STREAM, or above a GOAWAY's last
    /// stream ID), so the call may be retried transparently.
    @exclusivity(unchecked) var unprocessed = false
    /// Kept by the connection's ``DeadlineQueue`` while this call has a deadline armed there.
    @exclusivity(unchecked) var deadlines: DeadlineQueue?
    @exclusivity(unchecked) var deadlineSlot = -1

    init(eventLoop: any EventLoop, maxReceiveMessageSize: Int) {
        self.inbound = InboundMessageBuffer(maxMessageSize: maxReceiveMessageSize, compression: nil)
        self.eventLoop = eventLoop
        inbound.window = self
    }

    /// Window updates produced when the caller takes messages must reach the socket.
    func returnToWindow(_ bytes: Int) {
        guard streamID > 0, let connection else { return }
        connection.session.consume(streamID: streamID, bytes: bytes)
        connection.scheduleFlush()
    }

    /// Handles a HEADERS block from the server: response headers, trailers, or a trailers-only response.
    /// Fields stay bytes; metadata decodes them only if the caller reads it.
    func receiveHeaders(_ headers: HeaderBlock, endStream: Bool) {
        guard !completed else { return }
        if !headersReceived {
            headersReceived = true
            var httpStatus = 0
            var contentTypeIndex: Int?
            var isGRPC = false
            var hasGRPCStatus = false
            var encodingIndex: Int?
            headers.forEachField { index, name, value in
                if name.equals(":status") {
                    httpStatus = value.asciiInteger ?? 0
                } else if name.equals("content-type") {
                    contentTypeIndex = index
                    isGRPC = value.hasPrefix("application/grpc")
                } else if name.equals("grpc-status") {
                    hasGRPCStatus = true
                } else if name.equals("grpc-encoding") {
                    encodingIndex = index
                }
            }
            if httpStatus != 200 && !(hasGRPCStatus && endStream) {
                let code = StatusCode.fromHTTPStatus(httpStatus)
                fail(RPCError(code: code, message: "unexpected HTTP status \(httpStatus)"), reset: !endStream)
                return
            }
            if !isGRPC && !(hasGRPCStatus && endStream) {
                let contentType = contentTypeIndex.map { headers.value(at: $0) } ?? ""
                fail(RPCError(code: .unknown, message: "unexpected content-type \"\(contentType)\""), reset: !endStream)
                return
            }
            if endStream {
                // Trailers-only: the headers are the trailers.
                complete(with: Self.status(from: headers))
                return
            }
            if let encodingIndex {
                let encoding = headers.value(at: encodingIndex)
                if encoding != "identity" {
                    guard let algorithm = CompressionAlgorithm(rawValue: encoding) else {
                        fail(RPCError(code: .internalError, message: "server used unsupported grpc-encoding \"\(encoding)\""), reset: true)
                        return
                    }
                    inbound.setCompression(algorithm)
                }
            }
            settleInitialMetadata(Metadata(wireFields: headers))
            return
        }
        complete(with: Self.status(from: headers))
    }

    func receiveData(_ data: ByteBuffer) {
        if let error = inbound.receive(data) {
            fail(error, reset: true)
        } else if unaryWaiter != nil, inbound.messageCount > 1 {
            failSecondUnaryMessage()
        }
    }

    /// END_STREAM on DATA: the server ended without trailers, which gRPC forbids.
    func receiveEndStreamOnData() {
        complete(with: RPCError(code: .internalError, message: "the server ended the stream without sending a grpc-status"))
    }

    /// nghttp2 closed the stream; anything not yet completed failed.
    func closed(errorCode: UInt32) {
        guard !completed else { return }
        let error: RPCError
        switch errorCode {
        case HTTP2ErrorCode.refusedStream:
            unprocessed = true
            error = RPCError(code: .unavailable, message: "the server refused the stream")
        case HTTP2ErrorCode.cancel: error = RPCError(code: .cancelled, message: "the server cancelled the stream")
        case HTTP2ErrorCode.enhanceYourCalm: error = RPCError(code: .resourceExhausted, message: "the server reset the stream with ENHANCE_YOUR_CALM")
        case HTTP2ErrorCode.noError: error = RPCError(code: .internalError, message: "the stream closed without a grpc-status")
        default: error = RPCError(code: .internalError, message: "the server reset the stream with HTTP/2 error code \(errorCode)")
        }
        fail(error, reset: false)
    }

    private func complete(with status: RPCError) {
        guard !completed else { return }
        completed = true
        cancelDeadline()
        if !initialMetadataSettled { settleInitialMetadata(Metadata()) }
        if let error = inbound.receiveEnd() {
            inbound.fail(error)
            resolveStatus(status.code == .ok ? error : status)
        } else {
            resolveStatus(status)
        }
        outbound.failWriter(status.code == .ok ? RPCError(code: .failedPrecondition, message: "the server already ended the call") : status)
        // The server finished; if we have not half-closed yet, stop the stream from our side too.
        if !outbound.isFinished, let connection {
            outbound.isFinished = true
            connection.session.resetStream(streamID, errorCode: HTTP2ErrorCode.cancel)
            connection.scheduleFlush()
        }
    }

    /// Ends the call locally with `error` (deadline, cancellation, bad response, connection loss).
    func fail(_ error: RPCError, reset: Bool) {
        guard !completed else { return }
        completed = true
        cancelDeadline()
        if reset, streamID > 0, let connection {
            connection.session.resetStream(streamID, errorCode: HTTP2ErrorCode.cancel)
            connection.scheduleFlush()
        }
        if !initialMetadataSettled { failInitialMetadata(error) }
        inbound.fail(error)
        outbound.failWriter(error)
        outbound.isFinished = true
        resolveStatus(error)
    }

    /// The response headers' metadata (empty for a trailers-only response), or the call's error.
    var initialMetadataFuture: EventLoopFuture<Metadata> {
        if initialMetadataSettled {
            if let error = initialMetadataError { return eventLoop.makeFailedFuture(error) }
            return eventLoop.makeSucceededFuture(initialMetadata)
        }
        let promise = initialMetadataPromise ?? eventLoop.makePromise()
        initialMetadataPromise = promise
        return promise.futureResult
    }

    /// The final status (`.ok` included), once the call ended.
    var statusFuture: EventLoopFuture<RPCError> {
        if let finalStatus { return eventLoop.makeSucceededFuture(finalStatus) }
        let promise = statusPromise ?? eventLoop.makePromise()
        statusPromise = promise
        return promise.futureResult
    }

    private func settleInitialMetadata(_ metadata: Metadata) {
        initialMetadataSettled = true
        initialMetadata = metadata
        initialMetadataPromise?.succeed(metadata)
        initialMetadataPromise = nil
    }

    private func failInitialMetadata(_ error: RPCError) {
        initialMetadataSettled = true
        initialMetadataError = error
        initialMetadataPromise?.fail(error)
        initialMetadataPromise = nil
    }

    private func resolveStatus(_ status: RPCError) {
        finalStatus = status
        statusPromise?.succeed(status)
        statusPromise = nil
        if let waiter = unaryWaiter {
            unaryWaiter = nil
            deliver(unaryResult(status), to: waiter)
        }
    }

    /// A unary call's outcome from its final status and the messages received.
    private func unaryResult(_ status: RPCError) -> Result<UnaryResponse<ByteBuffer>, RPCError> {
        guard status.code == .ok else { return .failure(status) }
        let messages = inbound.takeAll()
        guard messages.count == 1, let message = messages.first else {
            return .failure(RPCError(code: .internalError, message: "expected one response message, received \(messages.count == 0 ? "none" : "more")"))
        }
        return .success(UnaryResponse(message: message, initialMetadata: initialMetadata, trailingMetadata: status.metadata))
    }

    /// Who waits for a unary call's outcome: the fast path's continuation (stored as it is: no
    /// closure to allocate per call, as a callback was), or a promise (client streaming).
    enum UnaryWaiter {
        case continuation(UnsafeContinuation<RPCChannel.UnaryAttempt, Never>)
        case promise(EventLoopPromise<UnaryResponse<ByteBuffer>>)
    }

    /// Tells `waiter`, once, on the event loop, the call's one response or its error; a second
    /// response message fails the call at once.
    func awaitUnaryOutcome(_ waiter: UnaryWaiter) {
        if let finalStatus {
            deliver(unaryResult(finalStatus), to: waiter)
            return
        }
        unaryWaiter = waiter
        if inbound.messageCount > 1 { failSecondUnaryMessage() }
    }

    private func deliver(_ result: Result<UnaryResponse<ByteBuffer>, RPCError>, to waiter: UnaryWaiter) {
        switch (waiter, result) {
        case (.continuation(let continuation), .success(let response)): continuation.resume(returning: .answered(response))
        case (.continuation(let continuation), .failure(let error)): continuation.resume(returning: .failed(error, unprocessed: unprocessed))
        case (.promise(let promise), _): promise.completeWith(result.mapError { $0 as any Error })
        }
    }

    /// A unary response stream carried a second message: fail the call at once rather than buffer more.
    private func failSecondUnaryMessage() {
        fail(RPCError(code: .internalError, message: "expected one response message, received more"), reset: true)
    }

    private static func status(from headers: HeaderBlock) -> RPCError {
        var code: StatusCode?
        var messageIndex: Int?
        headers.forEachField { index, name, value in
            if name.equals("grpc-status") {
                code = value.asciiInteger.flatMap { StatusCode(rawValue: $0) } ?? .unknown
            } else if name.equals("grpc-message") {
                messageIndex = index
            }
        }
        // Reserved names (grpc-status, grpc-message, ...) never appear in the trailing metadata.
        let trailers = Metadata(wireFields: headers)
        guard let code else {
            return RPCError(code: .internalError, message: "the response ended without a grpc-status", metadata: trailers)
        }
        let message = messageIndex.map { PercentEncoding.decode(headers.value(at: $0)) } ?? ""
        return RPCError(code: code, message: message, metadata: trailers)
    }
}

extension ClientStream: DeadlineExpiring {
    func deadlineExpired() {
        fail(RPCError(code: .deadlineExceeded, message: "deadline exceeded"), reset: true)
    }
}
