import NIOCore

/// The caller's side of one client stream: writes, reads, metadata, status and cancellation.
///
/// Sendable; every operation hops to the connection's event loop, where the ``ClientStream`` lives.
/// Encoding, framing and gzip happen on the calling task. Task cancellation while awaiting any step
/// resets the stream (RST_STREAM CANCEL) and surfaces as `CANCELLED`.
@usableFromInline
final class ClientCall: MessageSource, MessageSink, Sendable {
    let eventLoop: any EventLoop
    let stream: NIOLoopBound<ClientStream>
    let compression: CompressionAlgorithm?

    init(stream: NIOLoopBound<ClientStream>, eventLoop: any EventLoop, compression: CompressionAlgorithm?) {
        self.stream = stream
        self.eventLoop = eventLoop
        self.compression = compression
    }

    private func cancelHook() -> @Sendable () -> Void {
        let stream = self.stream
        let eventLoop = self.eventLoop
        return {
            eventLoop.execute { stream.value.fail(RPCError(code: .cancelled, message: "the call was cancelled by the caller"), reset: true) }
        }
    }

    @usableFromInline func nextMessage() async throws(RPCError) -> ByteBuffer? {
        let promise = eventLoop.makePromise(of: ByteBuffer?.self)
        let stream = self.stream
        eventLoop.execute { stream.value.inbound.next(promise) }
        return try await promise.futureResult.rpcValue(onCancel: cancelHook())
    }

    @usableFromInline func writeMessage(_ bytes: [UInt8]) async throws(RPCError) {
        let framed = try MessageFramer.frameRequest(bytes, compression: compression)
        let promise = eventLoop.makePromise(of: Void.self)
        let stream = self.stream
        eventLoop.execute {
            let stream = stream.value
            guard !stream.completed, !stream.outbound.isFinished, let connection = stream.connection else {
                promise.fail(RPCError(code: .failedPrecondition, message: "the call is already over"))
                return
            }
            stream.outbound.enqueue(framed, promise: promise)
            connection.session.resumeData(streamID: stream.streamID)
            connection.scheduleFlush()
        }
        try await promise.futureResult.rpcValue(onCancel: cancelHook())
    }

    /// Ends the request stream (END_STREAM after queued messages).
    func halfClose() {
        let stream = self.stream
        eventLoop.execute {
            let stream = stream.value
            guard !stream.outbound.isFinished, let connection = stream.connection else { return }
            stream.outbound.isFinished = true
            connection.session.resumeData(streamID: stream.streamID)
            connection.scheduleFlush()
        }
    }

    /// Cancels the call unless it already completed (RST_STREAM CANCEL).
    func cancel(message: String = "the call was cancelled by the caller") {
        let stream = self.stream
        eventLoop.execute { stream.value.fail(RPCError(code: .cancelled, message: message), reset: true) }
    }

    func initialMetadata() async throws(RPCError) -> Metadata {
        let stream = self.stream
        let future = eventLoop.flatSubmit { stream.value.initialMetadataFuture }
        return try await future.rpcValue(onCancel: cancelHook())
    }

    /// The final status (`.ok` included); its `metadata` is the trailing metadata.
    @usableFromInline func status() async throws(RPCError) -> RPCError {
        let stream = self.stream
        let future = eventLoop.flatSubmit { stream.value.statusFuture }
        return try await future.rpcValue(onCancel: cancelHook())
    }

    /// Whether the server provably never processed the call (safe to retry transparently).
    func wasUnprocessed() async -> Bool {
        let stream = self.stream
        return (try? await eventLoop.submit { stream.value.unprocessed }.get()) ?? false
    }

    /// The single response and metadata of a unary or client-streaming call; throws the status if not OK.
    func unaryResponse() async throws(RPCError) -> UnaryResponse<ByteBuffer> {
        let promise = eventLoop.makePromise(of: UnaryResponse<ByteBuffer>.self)
        let stream = self.stream
        eventLoop.execute { stream.value.awaitUnaryOutcome(.promise(promise)) }
        return try await promise.futureResult.rpcValue(onCancel: cancelHook())
    }
}
