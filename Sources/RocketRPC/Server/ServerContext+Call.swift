import NIOCore

/// The handler task's side of one server stream: reads, writes and the final status.
///
/// Sendable; every operation hops to the connection's event loop, where the ``ServerStream`` lives.
/// Message encoding and framing (including gzip) happen on the calling task, off the event loop.
extension ServerContext: MessageSource, MessageSink {
    /// Runs the method's handler and ends the call with what it returns or throws. Everything the
    /// handler task needs is in `self`, so the task's closure captures nothing else.
    nonisolated(nonsending) func run() async {
        do {
            finish(status: nil, finalMessage: try await serverMethod.run(self))
        } catch {
            fail(with: error)
        }
    }

    /// Runs the work an immediate handler deferred (``ImmediateAnswer/later(_:)``) and ends the
    /// call with its response or error, as `run()` does for a handler.
    nonisolated(nonsending) func runLater(_ work: @Sendable () async throws -> [UInt8]) async {
        do {
            finish(status: nil, finalMessage: try await work())
        } catch {
            fail(with: error)
        }
    }

    /// Ends the call with the status for what the handler threw. Kept out of `run()` (never
    /// inlined) so that its temporaries do not enlarge the async frame every call allocates.
    @inline(never)
    func fail(with error: any Error) {
        switch error {
        case let error as RPCError:
            finish(status: error, finalMessage: nil)
        case is CancellationError:
            finish(status: RPCError(code: .cancelled, message: "the handler was cancelled"), finalMessage: nil)
        default:
            let description = "\(error)"
            // A finished stream's connection may be gone (the client disconnected while the
            // handler ran): such a stream must not be asked for it.
            onLoop { [serverMethod] stream in
                guard let stream, !stream.finished else { return }
                stream.connection.logHandlerFailure(method: serverMethod.descriptor, error: description)
            }
            finish(status: RPCError(code: .unknown, message: description), finalMessage: nil)
        }
    }

    /// This call's stream, or `nil` once the stream serves another call. On the event loop only.
    private var currentStream: ServerStream? {
        stream.generation == generation ? stream : nil
    }

    /// Runs `body` on the stream's event loop with this call's stream (`nil` once the stream serves
    /// another call): inline when already there (handlers run on the event loop by default),
    /// otherwise as an enqueued job.
    private func onLoop(_ body: @escaping @Sendable (ServerStream?) -> Void) {
        if eventLoop.inEventLoop {
            body(currentStream)
        } else {
            eventLoop.execute { body(self.currentStream) }
        }
    }

    private func cancelHook() -> @Sendable () -> Void {
        { self.onLoop { $0?.cancelledByTask() } }
    }

    /// The error for a use of the stream after the call ended and the stream was reused.
    private static let callIsOver = RPCError(code: .cancelled, message: "the call is already over")

    @usableFromInline func nextMessage() async throws(RPCError) -> ByteBuffer? {
        let promise = eventLoop.makePromise(of: ByteBuffer?.self)
        onLoop { stream in
            guard let stream else { return promise.fail(Self.callIsOver) }
            stream.inbound.next(promise)
        }
        return try await promise.futureResult.rpcValue(onCancel: cancelHook())
    }

    /// The one request of a unary or server-streaming call: the message the runtime collected before
    /// starting the handler, or (if none was collected) read now; `INTERNAL` unless exactly one arrives.
    @usableFromInline
    nonisolated(nonsending) func singleMessage() async throws(RPCError) -> ByteBuffer {
        if let collected = collectedRequest {
            collectedRequest = nil
            return collected
        }
        let promise = eventLoop.makePromise(of: [ByteBuffer].self)
        onLoop { stream in
            guard let stream else { return promise.fail(Self.callIsOver) }
            stream.inbound.collectAll(promise)
        }
        let messages = try await promise.futureResult.rpcValue(onCancel: cancelHook())
        return try Self.exactlyOne(count: messages.count, first: messages.first)
    }

    /// The request of a single-request call, given how many messages arrived and the first.
    static func exactlyOne(count: Int, first: ByteBuffer?) throws(RPCError) -> ByteBuffer {
        guard count == 1, let first else { throw wrongRequestCount(count) }
        return first
    }

    /// The status of a single-request call that received `count` (not one) messages.
    static func wrongRequestCount(_ count: Int) -> RPCError {
        RPCError(code: .internalError, message: count == 0 ? "expected one request message, received none" : "expected one request message, received more")
    }

    @usableFromInline func writeMessage(_ bytes: [UInt8]) async throws(RPCError) {
        try await write(CollectionOfOne(bytes))  // no array for the common single write
    }

    @usableFromInline func writeMessages(_ messages: [[UInt8]]) async throws(RPCError) {
        try await write(messages)
    }

    private func write(_ messages: some Collection<[UInt8]> & Sendable) async throws(RPCError) {
        guard let first = messages.first else { return }
        let compression = responseCompression
        var framed: ByteBuffer
        do {
            // Length-prefixed messages follow each other in the stream's DATA: one buffer holds them all.
            framed = try MessageFramer.frame(first, compression: compression)
            for bytes in messages.dropFirst() {
                var next = try MessageFramer.frame(bytes, compression: compression)
                framed.writeBuffer(&next)
            }
        } catch {
            throw RPCError(code: .internalError, message: "cannot compress response: \(error)")
        }
        let promise = eventLoop.makePromise(of: Void.self)
        let metadata = responseMetadata
        onLoop { [framed] stream in
            guard let stream else { return promise.fail(Self.callIsOver) }
            stream.write(framed, compression: compression, metadata: metadata, promise: promise)
        }
        try await promise.futureResult.rpcValue(onCancel: cancelHook())
    }

    /// Ends the call: `status` nil means OK; `finalMessage` is the single response of unary/client-streaming.
    /// Never inlined into the async `run()`, whose frame every call allocates.
    @inline(never)
    func finish(status: RPCError?, finalMessage: [UInt8]?) {
        let (metadata, trailingMetadata, compression) = responseSnapshot
        var framed: OutboundDataQueue.Chunk?
        var status = status
        if let finalMessage {
            if compression == nil || compression == .identity {
                // Framed as nghttp2 copies it out: one copy of the payload instead of two.
                framed = .message(finalMessage)
            } else {
                do {
                    framed = .bytes(try MessageFramer.frame(finalMessage, compression: compression))
                } catch {
                    status = RPCError(code: .internalError, message: "cannot compress response: \(error)")
                }
            }
        }
        var trailers = trailingMetadata
        if let status { trailers.add(contentsOf: status.metadata) }
        let finalStatus = status ?? RPCError(code: .ok, message: "")
        if eventLoop.inEventLoop {
            // Handlers run on the event loop by default: finish inline, no job, no closure.
            currentStream?.finish(status: finalStatus, trailers: trailers, responseMetadata: metadata, finalMessage: framed, compression: compression)
        } else {
            eventLoop.execute { [framed, trailers] in
                self.currentStream?.finish(status: finalStatus, trailers: trailers, responseMetadata: metadata, finalMessage: framed, compression: compression)
            }
        }
    }
}
