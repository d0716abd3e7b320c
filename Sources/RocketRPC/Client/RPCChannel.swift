import Logging
import NIOCore
import NIOPosix
import RocketProto

/// A gRPC client channel: one lazily established HTTP/2 connection to one server, shared by any number
/// of concurrent calls (one stream each).
///
/// Thread-safe. The connection's nghttp2 session lives on one event loop; calls reach it by hopping
/// there. After a failed connection attempt the channel backs off (``ChannelConfiguration/Backoff``);
/// meanwhile calls without `waitForReady` fail fast with `UNAVAILABLE`. A per-call timeout is sent as
/// `grpc-timeout` and enforced locally (`DEADLINE_EXCEEDED` + RST_STREAM CANCEL); cancelling the
/// calling task resets the stream and throws `CANCELLED`.
public final class RPCChannel: Sendable {
    /// The configuration the channel was created with.
    public let configuration: ChannelConfiguration
    private let connector: ClientConnector
    /// The request header fields every call on this channel starts with: the pseudo-header
    /// fields but `:path`, then (after `:path`) the regular ones.
    private let fixedRequestPseudoFields: HeaderBlock
    private let fixedRequestFields: HeaderBlock
    private let headerCache = RequestHeaderCache()

    /// - Parameter eventLoopGroup: defaults to `MultiThreadedEventLoopGroup.singleton`.
    /// - Note: an invalid TLS configuration is reported by every call (as `UNAVAILABLE`), not here.
    public init(configuration: ChannelConfiguration, eventLoopGroup: (any EventLoopGroup)? = nil, logger: Logger = Logger(label: "rocketmq.rpc.channel")) {
        self.configuration = configuration
        let group = eventLoopGroup ?? MultiThreadedEventLoopGroup.singleton
        var config = configuration
        do {
            self.connector = try ClientConnector(configuration: config, group: group, logger: logger)
        } catch {
            logger.error("invalid TLS configuration; the channel will not connect", metadata: ["error": "\(error)"])
            config.tls = nil
            self.connector = ClientConnector(failedWith: RPCError(code: .unavailable, message: "invalid TLS configuration: \(error)"), configuration: config, group: group, logger: logger)
        }
        let authority = configuration.host.contains(":") ? "[\(configuration.host)]:\(configuration.port)" : "\(configuration.host):\(configuration.port)"
        let scheme = configuration.tls == nil ? "http" : "https"
        self.fixedRequestPseudoFields = HeaderBlock([(":method", "POST"), (":scheme", scheme), (":authority", authority)])
        var fixedFields = HeaderBlock([
            ("content-type", "application/grpc"), ("te", "trailers"), ("user-agent", "rocketrpc-swift/1.0"),
            ("grpc-accept-encoding", CompressionAlgorithm.acceptEncodingHeader),
        ])
        // The channel's default metadata is the same for every call: laid out here once.
        configuration.defaultCallOptions.metadata.appendWireHeaders(to: &fixedFields)
        self.fixedRequestFields = fixedFields
    }

    /// Closes the connection (GOAWAY); calls made afterwards fail with `UNAVAILABLE`.
    public func close() async {
        await connector.close()
    }

    // MARK: Call kinds

    /// Sends one request and returns the one response with its metadata.
    /// - Throws: ``RPCError`` with the call's non-OK status.
    ///
    /// The generic entry points are thin and inlinable: encoding and decoding are specialized for
    /// the caller's message types (generic, they paid runtime metadata lookups per call); the
    /// call itself is the non-generic byte-level path.
    @inlinable
    public func unary<Req: ProtoMessage, Resp: ProtoMessage>(
        _ method: MethodDescriptor,
        request: Req,
        options: CallOptions = CallOptions()
    ) async throws -> UnaryResponse<Resp> {
        let response = try await unary(method, serializedRequest: request.serializedBytes(), options: options)
        return UnaryResponse(
            message: try decodeMessage(Resp.self, from: response.message),
            initialMetadata: response.initialMetadata,
            trailingMetadata: response.trailingMetadata
        )
    }

    /// ``unary(_:request:options:)`` on encoded messages: the request's bytes in, the response's out.
    @usableFromInline
    func unary(_ method: MethodDescriptor, serializedRequest: [UInt8], options: CallOptions) async throws -> UnaryResponse<ByteBuffer> {
        let options = effective(options)
        let deadline = options.timeout.map { ContinuousClock.now.advanced(by: $0) }
        if Task.isCancelled { throw RPCError(code: .cancelled, message: "the call was cancelled before it started") }
        let compression = options.compression == .identity ? nil : options.compression
        let framed = try MessageFramer.requestChunk(serializedRequest, compression: compression)
        // One transparent retry for a call the server provably never processed (gRPC's transparent
        // retry): refused streams and streams above a GOAWAY's last stream ID. A connection that
        // just received GOAWAY takes no new streams: it is taken out of use and the call tries once more.
        for _ in 0..<3 {
            // A ready connection needs no wait; a deadline already over (a timeout of zero or
            // less) is left to the general path, which fails the call without sending it.
            let usable = options.timeout.map { $0 > .zero } ?? true
            let connection = if usable, let ready = connector.readyConnection {
                ready
            } else {
                try await connector.connection(waitForReady: options.waitForReady, deadline: deadline)
            }
            switch try await unaryAttempt(method, on: connection, options: options, deadline: deadline, framed: framed, compression: compression) {
            case .refused:
                connector.markUnusable(connection)
            case .answered(let response):
                return response
            case .failed(let error, let unprocessed):
                guard unprocessed, !Task.isCancelled else { throw error }
            }
        }
        throw RPCError(code: .unavailable, message: "the call was refused twice without being processed")
    }

    /// Sends one request; `handle` consumes the response stream and its result is returned.
    /// If `handle` returns before the stream ended, the call is cancelled.
    public func serverStreaming<Req: ProtoMessage, Resp: ProtoMessage, R: Sendable>(
        _ method: MethodDescriptor,
        request: Req,
        options: CallOptions = CallOptions(),
        handle: @Sendable (ResponseStream<Resp>) async throws -> R
    ) async throws -> R {
        let options = effective(options)
        let deadline = options.timeout.map { ContinuousClock.now.advanced(by: $0) }
        let call = try await startCall(method, options: options, deadline: deadline, firstMessage: request.serializedBytes(), halfClose: true)
        do {
            let result = try await handle(ResponseStream(call: call))
            call.cancel(message: "the response handler returned before the call ended")
            return result
        } catch {
            call.cancel(message: "the response handler failed")
            throw error
        }
    }

    /// `requests` writes any number of messages (the request stream half-closes when it returns);
    /// then the one response is returned.
    public func clientStreaming<Req: ProtoMessage, Resp: ProtoMessage>(
        _ method: MethodDescriptor,
        options: CallOptions = CallOptions(),
        requests: @Sendable (RequestWriter<Req>) async throws -> Void
    ) async throws -> UnaryResponse<Resp> {
        let options = effective(options)
        let deadline = options.timeout.map { ContinuousClock.now.advanced(by: $0) }
        let call = try await startCall(method, options: options, deadline: deadline, firstMessage: nil, halfClose: false)
        do {
            try await requests(RequestWriter(sink: call))
        } catch {
            try await throwStatusOrCancel(call, error)
        }
        call.halfClose()
        return try await decodeUnary(call.unaryResponse())
    }

    /// `requests` and `handle` run concurrently; the request stream half-closes when `requests` returns.
    /// If `handle` returns before the call ended, the call is cancelled.
    public func bidirectionalStreaming<Req: ProtoMessage, Resp: ProtoMessage, R: Sendable>(
        _ method: MethodDescriptor,
        options: CallOptions = CallOptions(),
        requests: @escaping @Sendable (RequestWriter<Req>) async throws -> Void,
        handle: @Sendable (ResponseStream<Resp>) async throws -> R
    ) async throws -> R {
        let options = effective(options)
        let deadline = options.timeout.map { ContinuousClock.now.advanced(by: $0) }
        let call = try await startCall(method, options: options, deadline: deadline, firstMessage: nil, halfClose: false)
        return try await withThrowingTaskGroup(of: Void.self, returning: R.self) { group in
            group.addTask {
                do {
                    try await requests(RequestWriter(sink: call))
                    call.halfClose()
                } catch {
                    call.cancel(message: "the request producer failed: \(error)")
                    throw error
                }
            }
            let result: R
            do {
                result = try await handle(ResponseStream(call: call))
            } catch {
                call.cancel(message: "the response handler failed")
                group.cancelAll()
                throw error
            }
            call.cancel(message: "the response handler returned before the call ended")
            // The producer's own failure after the responses were handled does not change the result.
            while let _ = try? await group.next() {}
            return result
        }
    }

    // MARK: Internals

    private func effective(_ options: CallOptions) -> CallOptions {
        let defaults = configuration.defaultCallOptions
        var merged = options
        merged.timeout = options.timeout ?? defaults.timeout
        merged.compression = options.compression ?? defaults.compression
        merged.maxReceiveMessageSize = options.maxReceiveMessageSize ?? defaults.maxReceiveMessageSize
        merged.waitForReady = options.waitForReady || defaults.waitForReady
        // The default metadata is not merged in: it is part of the channel's fixed fields.
        return merged
    }

    private func throwStatusOrCancel(_ call: ClientCall, _ error: any Error) async throws -> Never {
        // A write failed because the server already ended the call: its status is the better error.
        if error is RPCError {
            let status = try await call.status()
            if status.code != .ok { throw status }
        }
        call.cancel(message: "the request producer failed: \(error)")
        // The caller's task was cancelled mid-call: report it as gRPC does, as CANCELLED.
        if error is CancellationError || Task.isCancelled {
            throw RPCError(code: .cancelled, message: "the call was cancelled by the client")
        }
        throw error
    }

    private func decodeUnary<Resp: ProtoMessage>(_ response: UnaryResponse<ByteBuffer>) throws -> UnaryResponse<Resp> {
        UnaryResponse(
            message: try decodeMessage(Resp.self, from: response.message),
            initialMetadata: response.initialMetadata,
            trailingMetadata: response.trailingMetadata
        )
    }

    private func startCall(
        _ method: MethodDescriptor,
        options: CallOptions,
        deadline: ContinuousClock.Instant?,
        firstMessage: [UInt8]?,
        halfClose: Bool
    ) async throws(RPCError) -> ClientCall {
        if Task.isCancelled { throw RPCError(code: .cancelled, message: "the call was cancelled before it started") }
        let compression = options.compression == .identity ? nil : options.compression
        let framed = try firstMessage.map { (message) throws(RPCError) in try MessageFramer.requestChunk(message, compression: compression) }
        // A connection that just received GOAWAY refuses new streams; take it out of use and try once more.
        for _ in 0..<2 {
            let connection = try await connector.connection(waitForReady: options.waitForReady, deadline: deadline)
            if let call = try await open(method, on: connection, options: options, deadline: deadline, framed: framed, compression: compression, halfClose: halfClose) {
                return call
            }
            connector.markUnusable(connection)
        }
        throw RPCError(code: .unavailable, message: "no connection could take the call")
    }

    /// Opens the stream on `connection`; `nil` if the connection takes no new streams.
    private func open(
        _ method: MethodDescriptor,
        on connection: ClientConnection,
        options: CallOptions,
        deadline: ContinuousClock.Instant?,
        framed: OutboundDataQueue.Chunk?,
        compression: CompressionAlgorithm?,
        halfClose: Bool
    ) async throws(RPCError) -> ClientCall? {
        let opener = StreamOpener(channel: self, method: method, connection: connection, options: options, deadline: deadline, framed: framed, halfClose: halfClose)
        let eventLoop = connection.eventLoop
        let promise = eventLoop.makePromise(of: ClientCall?.self)
        eventLoop.execute {
            guard let stream = opener.open() else {
                promise.succeed(nil)
                return
            }
            promise.succeed(ClientCall(stream: NIOLoopBound(stream, eventLoop: eventLoop), eventLoop: eventLoop, compression: compression))
        }
        return try await promise.futureResult.rpcValue(onCancel: {})
    }

    /// How one attempt at a unary call ended.
    enum UnaryAttempt: Sendable {
        /// The connection takes no new streams.
        case refused
        case answered(UnaryResponse<ByteBuffer>)
        /// `unprocessed`: the server provably never processed the call, so it may be retried.
        case failed(RPCError, unprocessed: Bool)
    }

    /// A unary call's fast path: opens the stream and collects its outcome in one hop to the
    /// connection's event loop and one back (a general call hops once per step). The outcome
    /// resumes the caller's continuation directly: no promise, future or callback list per call.
    private func unaryAttempt(
        _ method: MethodDescriptor,
        on connection: ClientConnection,
        options: CallOptions,
        deadline: ContinuousClock.Instant?,
        framed: OutboundDataQueue.Chunk,
        compression: CompressionAlgorithm?
    ) async throws(RPCError) -> UnaryAttempt {
        let opener = StreamOpener(channel: self, method: method, connection: connection, options: options, deadline: deadline, framed: framed, halfClose: true)
        let eventLoop = connection.eventLoop
        let attempt = NIOLoopBoundBox.makeBoxSendingValue(AttemptState.pending, eventLoop: eventLoop)
        return await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<UnaryAttempt, Never>) in
                if eventLoop.inEventLoop {
                    // A caller already on the connection's event loop (a task preferring it as
                    // executor) opens the stream right here: no job to enqueue and run.
                    Self.start(opener, attempt: attempt, continuation: continuation)
                } else {
                    eventLoop.execute { Self.start(opener, attempt: attempt, continuation: continuation) }
                }
            }
        } onCancel: {
            eventLoop.execute {
                let error = RPCError(code: .cancelled, message: "the call was cancelled by the caller")
                switch attempt.value {
                case .pending: attempt.value = .cancelled  // `start` has not run yet: it fails the call
                case .open(let stream): stream.fail(error, reset: true)
                case .cancelled: break
                }
            }
        }
    }

    /// Where a unary attempt is, on the event loop: cancellation may arrive before the stream opens.
    private enum AttemptState {
        case pending
        case open(ClientStream)
        case cancelled
    }

    /// Opens a unary attempt's stream and resumes `continuation` with its outcome. On the event loop.
    private static func start(_ opener: StreamOpener, attempt: NIOLoopBoundBox<AttemptState>, continuation: UnsafeContinuation<UnaryAttempt, Never>) {
        if case .cancelled = attempt.value {
            continuation.resume(returning: .failed(RPCError(code: .cancelled, message: "the call was cancelled by the caller"), unprocessed: false))
            return
        }
        guard let stream = opener.open() else {
            continuation.resume(returning: .refused)
            return
        }
        attempt.value = .open(stream)
        stream.awaitUnaryOutcome(.continuation(continuation))
    }

    /// A call's request header block: the one built for the last calls with the same method,
    /// metadata, compression and `grpc-timeout` text, or a new one.
    private func requestHeaders(method: MethodDescriptor, options: CallOptions, deadline: ContinuousClock.Instant?) -> HeaderBlock {
        let compression = options.compression == .identity ? nil : options.compression
        let timeout = deadline.map { deadline in GRPCTimeout.withFormatted(deadline - ContinuousClock.now) { TimeoutText($0) } }
        guard let identity = options.metadata.entriesIdentity else {
            return buildRequestHeaders(path: method.path, compression: compression, timeout: timeout, metadata: options.metadata)
        }
        let key = RequestHeaderCache.Key(path: method.path, compression: compression, timeout: timeout, metadata: identity)
        let (cached, keep) = headerCache.block(for: key)
        if let cached { return cached }
        let block = buildRequestHeaders(path: method.path, compression: compression, timeout: timeout, metadata: options.metadata)
        if keep { headerCache.insert(block, for: key, metadata: options.metadata) }
        return block
    }

    private func buildRequestHeaders(path: String, compression: CompressionAlgorithm?, timeout: TimeoutText?, metadata: Metadata) -> HeaderBlock {
        // Pseudo-header fields come first (RFC 9113 8.3); the channel's fixed ones are laid out once.
        var headers = HeaderBlock()
        // Room for the fixed fields, the path, `grpc-timeout` and some metadata: one
        // allocation (an estimate short of the metadata grew the block once more).
        headers.reserveCapacity(adding: fixedRequestPseudoFields.byteCount + fixedRequestFields.byteCount + path.utf8.count + 256)
        headers.append(contentsOf: fixedRequestPseudoFields)
        headers.append(name: ":path", value: path)
        headers.append(contentsOf: fixedRequestFields)
        if let compression { headers.append(name: "grpc-encoding", value: compression.rawValue) }
        timeout?.withBytes { headers.append(name: "grpc-timeout", value: $0) }
        metadata.appendWireHeaders(to: &headers)
        return headers
    }

    /// What opening one stream needs; ``open()`` runs on the connection's event loop.
    private struct StreamOpener: Sendable {
        let headers: HeaderBlock
        let connection: ClientConnection
        let deadline: ContinuousClock.Instant?
        /// The first request message, if the call has one at the start.
        let framed: OutboundDataQueue.Chunk?
        let halfClose: Bool
        let maxReceive: Int

        init(
            channel: RPCChannel, method: MethodDescriptor, connection: ClientConnection, options: CallOptions,
            deadline: ContinuousClock.Instant?, framed: OutboundDataQueue.Chunk?, halfClose: Bool
        ) {
            self.headers = channel.requestHeaders(method: method, options: options, deadline: deadline)
            self.connection = connection
            self.deadline = deadline
            self.framed = framed
            self.halfClose = halfClose
            self.maxReceive = options.maxReceiveMessageSize ?? channel.configuration.maxReceiveMessageSize
        }

        /// The new stream, its request queued and its deadline armed; `nil` (and the stream
        /// failed) when the connection takes no new streams.
        func open() -> ClientStream? {
            let eventLoop = connection.eventLoop
            let stream = ClientStream(eventLoop: eventLoop, maxReceiveMessageSize: maxReceive)
            if let framed { stream.outbound.append(framed) }
            if halfClose { stream.outbound.isFinished = true }
            guard connection.handler.value.open(stream, headers: headers) else {
                stream.fail(RPCError(code: .unavailable, message: "the connection cannot take new calls"), reset: false)
                return nil
            }
            if let deadline {
                let remaining = deadline - ContinuousClock.now
                connection.handler.value.armDeadline(of: stream, in: TimeAmount(remaining))
            }
            return stream
        }
    }
}
