import NIOCore

/// The event-loop side of one server call: inbound messages, outbound queue, and how the call ends.
///
/// Confined to the connection's event loop; the handler task reaches it only through its ``ServerContext``.
/// It keeps an `unowned(unsafe)` reference to its connection (no reference counting on the
/// per-request path): a handler task may keep its stream after the connection is gone, but the
/// stream is finished by then (`peerClosed` on `channelInactive`) and a finished stream no longer
/// touches its connection.
///
/// Stored properties are `@exclusivity(unchecked)`: the object is confined to one event loop and
/// never re-entered while one of its properties is being mutated, so the runtime's dynamic
/// exclusivity checks (measurable on the per-request path) are skipped.
///
/// A connection reuses its closed streams for new ones (``recycle()``, ``reuse(streamID:maxReceiveMessageSize:compression:)``)
/// instead of allocating a stream and its two queues per call. A handler task may outlive its
/// stream's call, so every use through ``ServerContext`` names the ``generation`` it was created for
/// and is refused once the stream serves another call.
final class ServerStream: InboundWindow {
    @exclusivity(unchecked) private(set) var streamID: Int32
    /// Which call the stream serves: increases each time it is reused.
    @exclusivity(unchecked) private(set) var generation: UInt64 = 0
    unowned(unsafe) let connection: ServerConnectionHandler
    let inbound: InboundMessageBuffer
    let outbound = OutboundDataQueue()
    /// A unary or server-streaming call waiting for its request: the handler starts once the
    /// request has ended (no task, no closure until then).
    @exclusivity(unchecked) var pendingStart: ServerContext?
    @exclusivity(unchecked) private(set) var headersSent = false
    /// Its DATA takes turns with other streams' (see ``shareTurns()``).
    @exclusivity(unchecked) private var incremental = false
    /// The status has been queued (or the stream was reset); nothing more is sent.
    @exclusivity(unchecked) private(set) var finished = false
    @exclusivity(unchecked) var task: Task<Void, Never>?
    /// Kept by the connection's ``DeadlineQueue`` while this call has a deadline armed there.
    @exclusivity(unchecked) var deadlines: DeadlineQueue?
    @exclusivity(unchecked) var deadlineSlot = -1
    /// Aborted with answers still queued: the armed deadline is the end of their linger
    /// (``ServerConfiguration/abortedCallLinger``), after which the stream is reset.
    @exclusivity(unchecked) private var lingering = false

    init(streamID: Int32, connection: ServerConnectionHandler, maxReceiveMessageSize: Int, compression: CompressionAlgorithm?) {
        self.streamID = streamID
        self.connection = connection
        self.inbound = InboundMessageBuffer(maxMessageSize: maxReceiveMessageSize, compression: compression)
        inbound.window = self
    }

    /// What one DATA frame carries at least (RFC 9113's smallest SETTINGS_MAX_FRAME_SIZE).
    private static let oneFrame = 16_384

    /// What uses of a call that has ended get (built once: `finish` and `recycle` hand it out for every call).
    private static let callIsOver = RPCError(code: .cancelled, message: "the call is already over")

    /// Drops what the ended call still holds (its task, request, queued bytes), so a stream kept
    /// for reuse pins nothing. Called once nghttp2 has closed the stream; uses by the old call's
    /// ``ServerContext`` are refused from here on.
    func recycle() {
        generation &+= 1
        let over = Self.callIsOver
        finished = true
        lingering = false
        pendingStart = nil
        task = nil
        cancelDeadline()
        inbound.fail(over)
        outbound.reset(failingWriterWith: over)
    }

    /// Prepares a recycled stream for the call on `streamID`: as fresh as a new stream.
    func reuse(streamID: Int32, maxReceiveMessageSize: Int, compression: CompressionAlgorithm?) {
        self.streamID = streamID
        headersSent = false
        incremental = false
        finished = false
        inbound.reset(maxMessageSize: maxReceiveMessageSize, compression: compression)
    }

    /// Window updates produced when the handler takes messages must reach the socket.
    func returnToWindow(_ bytes: Int) {
        connection.session.consume(streamID: streamID, bytes: bytes)
        connection.scheduleFlush()
    }

    func holdAssembling(_ delta: Int) -> Bool {
        connection.holdAssembling(delta)
    }

    /// The headers and trailers of the common case, laid out once (no metadata, no compression, OK).
    private static let plainResponseHeaders = PrebuiltHeaderFields([
        (":status", "200"), ("content-type", "application/grpc"), ("grpc-accept-encoding", CompressionAlgorithm.acceptEncodingHeader),
    ])
    private static let okTrailers = PrebuiltHeaderFields([("grpc-status", "0")])

    private func responseHeaders(compression: CompressionAlgorithm?, metadata: Metadata) -> HeaderFields {
        if metadata.isEmpty && (compression == nil || compression == .identity) { return .prebuilt(Self.plainResponseHeaders) }
        var headers: [(String, String)] = [(":status", "200"), ("content-type", "application/grpc")]
        if let compression, compression != .identity { headers.append(("grpc-encoding", compression.rawValue)) }
        headers.append(("grpc-accept-encoding", CompressionAlgorithm.acceptEncodingHeader))
        metadata.appendWireHeaders(to: &headers)
        return .fields(headers)
    }

    private func sendHeadersIfNeeded(compression: CompressionAlgorithm?, metadata: Metadata) {
        guard !headersSent else { return }
        headersSent = true
        connection.session.submitResponse(streamID: streamID, headers: responseHeaders(compression: compression, metadata: metadata), body: outbound)
    }

    /// A response of more than one DATA frame takes turns with other streams' frames. Under RFC
    /// 9218 (the server's scheduling, see `createRawSession`) streams of one urgency that are not
    /// incremental go oldest first, so a large or streaming response would hold back every call
    /// opened after it. A reply that fits one frame (the usual unary answer) skips the call.
    private func shareTurns() {
        guard !incremental else { return }
        incremental = true
        connection.session.makeIncremental(streamID: streamID)
    }

    /// Queues one framed response message (sending the headers first if needed).
    func write(_ framed: ByteBuffer, compression: CompressionAlgorithm?, metadata: Metadata, promise: EventLoopPromise<Void>) {
        guard !finished else {
            promise.fail(Self.callIsOver)
            return
        }
        shareTurns()
        sendHeadersIfNeeded(compression: compression, metadata: metadata)
        outbound.enqueue(framed, promise: promise)
        connection.session.resumeData(streamID: streamID, queue: outbound)
        connection.didSendCallFrames()
        connection.scheduleFlush()
    }

    /// Queues the status (and a final message): a trailers-only response if nothing was sent yet.
    func finish(status: RPCError, trailers: Metadata, responseMetadata: Metadata, finalMessage: OutboundDataQueue.Chunk?, compression: CompressionAlgorithm?) {
        guard !finished else { return }
        finished = true
        pendingStart = nil
        cancelDeadline()
        let statusFields: HeaderFields
        if status.code == .ok && status.message.isEmpty && trailers.isEmpty {
            statusFields = .prebuilt(Self.okTrailers)
        } else {
            var fields = [("grpc-status", String(status.code.rawValue))]
            if !status.message.isEmpty { fields.append(("grpc-message", PercentEncoding.encode(status.message))) }
            trailers.appendWireHeaders(to: &fields)
            statusFields = .fields(fields)
        }
        if !headersSent && finalMessage == nil {
            headersSent = true
            var headers: [(String, String)] = [(":status", "200"), ("content-type", "application/grpc")]
            responseMetadata.appendWireHeaders(to: &headers)
            headers.append(contentsOf: statusFields.strings)
            connection.session.submitResponse(streamID: streamID, headers: .fields(headers), body: nil)
        } else {
            if let finalMessage, finalMessage.count > Self.oneFrame { shareTurns() }
            sendHeadersIfNeeded(compression: compression, metadata: responseMetadata)
            if let finalMessage { outbound.append(finalMessage) }
            outbound.trailers = statusFields
            outbound.isFinished = true
            connection.session.resumeData(streamID: streamID, queue: outbound)
        }
        // Requests the handler never read no longer matter; return their bytes to the window.
        inbound.fail(Self.callIsOver)
        connection.didSendCallFrames()
        connection.scheduleFlush()
    }

    /// Ends the call from the runtime side (deadline, framing error) and cancels the handler task.
    func abort(with status: RPCError) {
        let wasFinished = finished
        finish(status: status, trailers: Metadata(), responseMetadata: Metadata(), finalMessage: nil, compression: nil)
        if !wasFinished {
            outbound.failWriter(status)
            task?.cancel()
            // The status waits behind what is queued; see `ServerConfiguration.abortedCallLinger`.
            if outbound.queuedBytes > 0 {
                lingering = true
                connection.armLinger(of: self)
            }
        }
    }

    /// The peer reset the stream or the connection went away: cancel the handler.
    func peerClosed(errorCode: UInt32) {
        let error = RPCError(code: .cancelled, message: "the client cancelled the call (HTTP/2 error code \(errorCode))")
        finished = true
        pendingStart = nil
        cancelDeadline()
        inbound.fail(error)
        outbound.failWriter(error)
        task?.cancel()
    }

    /// The handler's own task was cancelled while it waited on the stream.
    func cancelledByTask() {
        let error = RPCError(code: .cancelled, message: "the handler task was cancelled")
        inbound.fail(error)
        outbound.failWriter(error)
    }
}

extension ServerStream: DeadlineExpiring {
    func deadlineExpired() {
        if lingering {
            // The client took too little of an aborted call's answers for its status to follow:
            // the stream is reset, and closing it (`recycle`) drops what was queued.
            lingering = false
            connection.session.resetStream(streamID, errorCode: 8)  // CANCEL
            connection.scheduleFlush()
            return
        }
        abort(with: RPCError(code: .deadlineExceeded, message: "deadline exceeded"))
    }
}
