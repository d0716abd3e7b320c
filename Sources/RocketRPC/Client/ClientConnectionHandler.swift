import Logging
import NIOCore

/// The client end of one HTTP/2 connection: opens request streams on nghttp2 and routes responses
/// back to their ``ClientStream``s.
///
/// Confined to its channel's event loop (a NIO handler; not `Sendable`). Output is pulled from
/// nghttp2 only while the channel is writable. When the connection closes, every open call fails
/// with `UNAVAILABLE`.
///
/// Stored properties are `@exclusivity(unchecked)`: the object is confined to one event loop and
/// never re-entered while one of its properties is being mutated, so the runtime's dynamic
/// exclusivity checks (measurable on the per-request path) are skipped.
final class ClientConnectionHandler: NGHTTP2SessionDelegate, ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let session: NGHTTP2Session
    @exclusivity(unchecked) private var streams = StreamTable<ClientStream>()
    @exclusivity(unchecked) private var context: ChannelHandlerContext?
    @exclusivity(unchecked) private var flushScheduled = false
    private let output = OutputPump()
    @exclusivity(unchecked) private var closing = false
    private let keepalive: ChannelConfiguration.Keepalive
    @exclusivity(unchecked) private var readSinceLastPing = true
    @exclusivity(unchecked) private var pingTimer: Scheduled<Void>?
    @exclusivity(unchecked) private var pingTimeout: Scheduled<Void>?
    /// The calls' deadlines (created with the first).
    @exclusivity(unchecked) private var deadlineQueue: DeadlineQueue?
    private let logger: Logger
    /// Told (once, from the event loop) that the server sent GOAWAY: no new calls should use this connection.
    private let onGoAway: @Sendable () -> Void
    @exclusivity(unchecked) private(set) var receivedGoAway = false

    init(configuration: ChannelConfiguration, allocator: ByteBufferAllocator, logger: Logger, onGoAway: @escaping @Sendable () -> Void) {
        self.session = NGHTTP2Session(role: .client, settings: configuration.http2Settings, allocator: allocator)
        self.keepalive = configuration.keepalive
        self.logger = logger
        self.onGoAway = onGoAway
        super.init()
        self.session.attach(self)
    }

    /// Opens a stream for `stream` with request `headers`; its body comes from `stream.outbound`.
    /// - Returns: `false` if the connection can take no new streams (closing, GOAWAY received).
    func open(_ stream: ClientStream, headers: HeaderBlock) -> Bool {
        guard !closing, !receivedGoAway, let streamID = session.submitRequest(headers: headers, body: stream.outbound) else {
            return false
        }
        stream.streamID = streamID
        stream.connection = self
        streams[streamID] = stream
        scheduleFlush()
        return true
    }

    // MARK: Channel events

    /// Fails `stream` with DEADLINE_EXCEEDED (and resets it) after `amount`, unless it ends first.
    func armDeadline(of stream: ClientStream, in amount: TimeAmount) {
        guard let context else { return }  // gone: its streams fail with the connection
        let deadlines = deadlineQueue ?? DeadlineQueue(eventLoop: context.eventLoop)
        deadlineQueue = deadlines
        deadlines.arm(stream, in: amount)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { activate(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        activate(context: context)
        context.fireChannelActive()
    }

    private func activate(context: ChannelHandlerContext) {
        flushOutput()
        guard pingTimer == nil, let interval = keepalive.pingInterval else { return }
        pingTimer = context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(interval)) { self.keepaliveTick() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        readSinceLastPing = true
        do {
            try session.receive(unwrapInboundIn(data))
        } catch {
            logger.debug("closing connection after HTTP/2 error", metadata: ["error": "\(error)"])
            flushOutput()
            close(context: context)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushOutput()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { flushOutput() }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closing = true
        pingTimer?.cancel()
        pingTimeout?.cancel()
        let open = streams
        streams.removeAll()
        for stream in open.values {
            stream.fail(RPCError(code: .unavailable, message: "the connection to the server was lost"), reset: false)
            stream.connection = nil
        }
        deadlineQueue?.cancelAll()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("connection error", metadata: ["error": "\(error)"])
        close(context: context)
    }

    private func close(context: ChannelHandlerContext) {
        guard !closing else { return }
        closing = true
        context.close(promise: nil)
    }

    /// Sends GOAWAY and closes once open calls are done (used by `RPCChannel.close()`).
    func closeGracefully() {
        session.terminate(errorCode: HTTP2ErrorCode.noError)
        flushOutput()
        if let context { close(context: context) }
    }

    // MARK: Output

    func scheduleFlush() {
        guard !flushScheduled, let context else { return }
        flushScheduled = true
        context.eventLoop.assumeIsolated().execute {
            self.flushScheduled = false
            self.flushOutput()
        }
    }

    func flushOutput() {
        guard let context, !closing else { return }
        let outcome = output.pump(session: session, context: context, isClosing: { self.closing }) { buffer in
            context.writeAndFlush(self.wrapOutboundOut(buffer), promise: nil)
        }
        switch outcome {
        case .reentered: return
        case .sessionFailed:
            close(context: context)
            return
        case .drained: break
        }
        if !session.wantsRead && !session.wantsWrite { close(context: context) }
    }

    private func keepaliveTick() {
        guard let context, !closing, let interval = keepalive.pingInterval else { return }
        let loop = context.eventLoop.assumeIsolated()
        if !readSinceLastPing && pingTimeout == nil {
            session.submitPing()
            flushOutput()
            pingTimeout = loop.scheduleTask(in: TimeAmount(keepalive.pingTimeout)) {
                self.logger.debug("keepalive PING not acknowledged; closing")
                if let context = self.context { self.close(context: context) }
            }
        }
        readSinceLastPing = false
        pingTimer = loop.scheduleTask(in: TimeAmount(interval)) { self.keepaliveTick() }
    }

    // MARK: NGHTTP2SessionDelegate

    override func session(_ session: NGHTTP2Session, didReceiveHeaders headers: HeaderBlock, streamID: Int32, endStream: Bool) {
        streams[streamID]?.receiveHeaders(headers, endStream: endStream)
    }

    override func session(_ session: NGHTTP2Session, didReceiveData data: ByteBuffer, streamID: Int32) {
        guard let stream = streams[streamID] else {
            session.consume(streamID: streamID, bytes: data.readableBytes)
            return
        }
        stream.receiveData(data)
    }

    override func session(_ session: NGHTTP2Session, didReceiveEndStreamOnData streamID: Int32) {
        streams[streamID]?.receiveEndStreamOnData()
    }

    override func session(_ session: NGHTTP2Session, didCloseStream streamID: Int32, errorCode: UInt32) {
        guard let stream = streams.removeValue(forKey: streamID) else { return }
        stream.closed(errorCode: errorCode)
        stream.connection = nil
    }

    override func session(_ session: NGHTTP2Session, didReceiveGoAway lastStreamID: Int32, errorCode: UInt32) {
        // A graceful server sends GOAWAY twice (2^31-1 first, then the real last stream); every one
        // may strand streams, but the connector needs telling only once.
        if !receivedGoAway {
            receivedGoAway = true
            onGoAway()
        }
        // Streams the server will never process can be retried elsewhere.
        for (id, stream) in streams where id > lastStreamID {
            streams[id] = nil
            stream.unprocessed = true
            stream.fail(RPCError(code: .unavailable, message: "the server is going away (GOAWAY) and did not process the call"), reset: false)
            stream.connection = nil
        }
    }

    override func sessionDidReceivePingAck(_ session: NGHTTP2Session) {
        pingTimeout?.cancel()
        pingTimeout = nil
    }
}
