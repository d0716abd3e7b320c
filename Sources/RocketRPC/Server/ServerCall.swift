import NIOCore

/// The handler task's side of one server stream: reads, writes and the final status.
///
/// Sendable; every operation hops to the connection's event loop, where the ``ServerStream`` lives.
/// Message encoding and framing (including gzip) happen on the calling task, off the event loop.
final class ServerCall: MessageSource, MessageSink, Sendable {
    let context: ServerContext
    let eventLoop: any EventLoop
    let stream: NIOLoopBound<ServerStream>

    init(context: ServerContext, stream: ServerStream, eventLoop: any EventLoop) {
        self.context = context
        self.eventLoop = eventLoop
        self.stream = NIOLoopBound(stream, eventLoop: eventLoop)
    }

    private func cancelHook() -> @Sendable () -> Void {
        let stream = self.stream
        let eventLoop = self.eventLoop
        return {
            eventLoop.execute { stream.value.cancelledByTask() }
        }
    }

    func nextMessage() async throws(RPCError) -> ByteBuffer? {
        let promise = eventLoop.makePromise(of: ByteBuffer?.self)
        let stream = self.stream
        eventLoop.execute { stream.value.inbound.next(promise) }
        return try await promise.futureResult.rpcValue(onCancel: cancelHook())
    }

    /// The one request of a unary or server-streaming call; `INTERNAL` if there is none or more than one.
    func receiveSingleMessage() async throws(RPCError) -> ByteBuffer {
        let promise = eventLoop.makePromise(of: [ByteBuffer].self)
        let stream = self.stream
        eventLoop.execute { stream.value.inbound.collectAll(promise) }
        let messages = try await promise.futureResult.rpcValue(onCancel: cancelHook())
        guard messages.count == 1, let message = messages.first else {
            throw RPCError(
                code: .internalError,
                message: messages.isEmpty ? "expected one request message, received none" : "expected one request message, received more"
            )
        }
        return message
    }

    func writeMessage(_ bytes: [UInt8]) async throws(RPCError) {
        let compression = context.responseCompression
        let framed: ByteBuffer
        do {
            framed = try MessageFramer.frame(bytes, compression: compression)
        } catch {
            throw RPCError(code: .internalError, message: "cannot compress response: \(error)")
        }
        let promise = eventLoop.makePromise(of: Void.self)
        let stream = self.stream
        let metadata = context.responseMetadata
        eventLoop.execute { stream.value.write(framed, compression: compression, metadata: metadata, promise: promise) }
        try await promise.futureResult.rpcValue(onCancel: cancelHook())
    }

    /// Ends the call: `status` nil means OK; `finalMessage` is the single response of unary/client-streaming.
    func finish(status: RPCError?, finalMessage: [UInt8]?) {
        let compression = context.responseCompression
        var framed: ByteBuffer?
        var status = status
        if let finalMessage {
            do {
                framed = try MessageFramer.frame(finalMessage, compression: compression)
            } catch {
                status = RPCError(code: .internalError, message: "cannot compress response: \(error)")
            }
        }
        let metadata = context.responseMetadata
        var trailers = context.trailingMetadata
        if let status { trailers.add(contentsOf: status.metadata) }
        let stream = self.stream
        eventLoop.execute { [framed, status, trailers] in
            stream.value.finish(
                status: status ?? RPCError(code: .ok, message: ""),
                trailers: trailers,
                responseMetadata: metadata,
                finalMessage: framed,
                compression: compression
            )
        }
    }
}
