import Logging
import NIOCore

/// Serves gRPC on one HTTP/2 connection: feeds bytes to nghttp2, turns requests into handler tasks,
/// and writes nghttp2's output back to the socket.
///
/// Confined to its channel's event loop (a NIO handler; not `Sendable`). Output is pulled from nghttp2
/// only while the channel is writable and resumes on `channelWritabilityChanged`, so a slow socket
/// defers DATA instead of buffering it. Handlers run as unstructured tasks and reach their stream only
/// through their ``ServerContext``.
///
/// Stored properties are `@exclusivity(unchecked)`: the object is confined to one event loop and
/// never re-entered while one of its properties is being mutated, so the runtime's dynamic
/// exclusivity checks (measurable on the per-request path) are skipped.
final class ServerConnectionHandler: NGHTTP2SessionDelegate, ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let session: NGHTTP2Session
    private let router: RPCRouter
    private let configuration: ServerConfiguration
    @exclusivity(unchecked) private var logger: Logger
    @exclusivity(unchecked) private var streams = StreamTable<ServerStream>()
    /// The stream most recently started: a request's HEADERS, DATA and END_STREAM usually arrive
    /// together, so most lookups are for it and skip hashing into `streams`. Cleared on close.
    @exclusivity(unchecked) private var latestStream: ServerStream?
    /// The method of the latest `:path` and its bytes: clients call one method over and over.
    @exclusivity(unchecked) private var latestPath: (bytes: [UInt8], method: ServerMethod)?
    /// The metadata fields of the request being started, gathered in storage reused call after call.
    @exclusivity(unchecked) private var metadataScratch = HeaderBlock()
    /// The latest request's metadata fields: a client sends the same ones on call after call
    /// (`user-agent`, its id), and then the new call shares this block instead of copying its own.
    @exclusivity(unchecked) private var latestRequestFields = HeaderBlock()
    /// The latest `grpc-accept-encoding` value and what it names (see `acceptedCompression(_:)`).
    @exclusivity(unchecked) private var latestAcceptEncoding: (bytes: [UInt8], algorithms: [CompressionAlgorithm])?
    /// Closed streams kept for the next calls (see ``ServerStream/recycle()``), at most
    /// `maxSpareStreams`: a busy connection opens and closes streams all the time, and reusing one
    /// saves allocating and freeing a stream and its two queues per call.
    @exclusivity(unchecked) private var spareStreams: [ServerStream] = []
    private static let maxSpareStreams = 16
    /// Streams that were given request bytes as slices of the buffer being read (see
    /// `session(_:didReceiveData:streamID:)`); what they still hold when the read ends is copied.
    @exclusivity(unchecked) private var lendingStreams: [ServerStream] = []
    @exclusivity(unchecked) private var context: ChannelHandlerContext?
    @exclusivity(unchecked) private var flushScheduled = false
    /// Between `channelRead` and `channelReadComplete`, which flushes: output requested meanwhile
    /// (handlers that answer inside the read) needs no flush job of its own.
    @exclusivity(unchecked) private var reading = false
    private let output = OutputPump()
    @exclusivity(unchecked) private var receivedBytes = false
    @exclusivity(unchecked) private var peer = "unknown"
    @exclusivity(unchecked) private var readSinceLastPing = true
    @exclusivity(unchecked) private var pingTimer: Scheduled<Void>?
    @exclusivity(unchecked) private var pingTimeout: Scheduled<Void>?
    @exclusivity(unchecked) private var closing = false
    @exclusivity(unchecked) private var lastPingReceived: NIODeadline?
    @exclusivity(unchecked) private var taskExecutor: EventLoopTaskExecutor?
    /// The calls' `grpc-timeout` deadlines (created with the first).
    @exclusivity(unchecked) private var deadlineQueue: DeadlineQueue?
    @exclusivity(unchecked) private var shutdownNoticeSent = false
    @exclusivity(unchecked) private var finalGoAwaySent = false
    @exclusivity(unchecked) private var finalGoAwayTimer: Scheduled<Void>?
    @exclusivity(unchecked) private var pingStrikes = 0
    /// GOAWAY ENHANCE_YOUR_CALM went out: the connection closes once it is flushed, open calls
    /// or not (nghttp2 would keep serving the open streams, and the pings would go on).
    @exclusivity(unchecked) private var closeWhenFlushed = false

    init(router: RPCRouter, configuration: ServerConfiguration, logger: Logger, allocator: ByteBufferAllocator) {
        self.router = router
        self.configuration = configuration
        self.logger = logger
        self.session = NGHTTP2Session(role: .server, settings: configuration.http2Settings, allocator: allocator)
        super.init()
        self.session.attach(self)
        self.session.slicesReceivedData = true
    }

    /// Number of calls in progress on this connection.
    var activeStreamCount: Int { streams.count }

    /// Bytes of request messages its calls are assembling (see
    /// ``ServerConfiguration/maxAssemblingBytesPerConnection``).
    @exclusivity(unchecked) private(set) var assemblingBytes = 0

    private func armDeadline(of stream: ServerStream, in amount: Duration) {
        guard let context else { return }
        let deadlines = deadlineQueue ?? DeadlineQueue(eventLoop: context.eventLoop)
        deadlineQueue = deadlines
        deadlines.arm(stream, in: TimeAmount(amount))
    }

    /// Gives an aborted call's queued answers `abortedCallLinger` to leave (``ServerStream/abort(with:)``).
    func armLinger(of stream: ServerStream) {
        armDeadline(of: stream, in: configuration.abortedCallLinger)
    }

    /// Counts `delta` more bytes being assembled unless that passes the connection's budget.
    func holdAssembling(_ delta: Int) -> Bool {
        let limit = max(configuration.maxAssemblingBytesPerConnection, configuration.maxReceiveMessageSize)
        if delta > 0, assemblingBytes + delta > limit { return false }
        assemblingBytes += delta
        return true
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if let address = context.channel.remoteAddress {
            peer = "\(address.ipAddress ?? "?"):\(address.port ?? 0)"
        }
        logger[metadataKey: "peer"] = "\(peer)"
        if context.channel.isActive { startKeepalive(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        startKeepalive(context: context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        reading = true
        readSinceLastPing = true
        let first = !receivedBytes
        receivedBytes = true
        defer { ownLentRequests(buffer) }
        do {
            try session.receive(buffer)
        } catch {
            if first, Self.looksLikeHTTP1(buffer) {
                // An HTTP/1.x client: answer in its own protocol, then close.
                let reply = "HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 30\r\n\r\nthis server speaks HTTP/2 only"
                context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: reply)), promise: nil)
                logger.debug("closing HTTP/1.x connection")
            } else {
                logger.debug("closing connection after HTTP/2 error", metadata: ["error": "\(error)"])
                flushOutput()
            }
            closeConnection(context: context)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        reading = false
        flushOutput()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { flushOutput() }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        pingTimer?.cancel()
        pingTimeout?.cancel()
        finalGoAwayTimer?.cancel()
        let open = streams
        streams.removeAll()
        latestStream = nil
        for stream in open.values { stream.peerClosed(errorCode: HTTP2ErrorCode.cancel) }
        deadlineQueue?.cancelAll()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("connection error", metadata: ["error": "\(error)"])
        closeConnection(context: context, afterWrites: false)
    }

    /// Requests still waiting for their end when a read is over stop sharing its buffer: NIO reuses
    /// a read buffer nothing else references, and a waiting request may wait long.
    private func ownLentRequests(_ buffer: ByteBuffer) {
        guard !lendingStreams.isEmpty else { return }
        for stream in lendingStreams { stream.inbound.ownMessages(slicedFrom: buffer) }
        lendingStreams.removeAll(keepingCapacity: true)
    }

    private static func looksLikeHTTP1(_ buffer: ByteBuffer) -> Bool {
        guard let head = buffer.getBytes(at: buffer.readerIndex, length: min(buffer.readableBytes, 8)) else { return false }
        guard let space = head.firstIndex(of: UInt8(ascii: " ")), space > 0 else { return false }
        return head[..<space].allSatisfy { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") } && !head.starts(with: Array("PRI ".utf8))
    }

    /// Closes the connection once what was handed to the channel is written (at most 5 s later):
    /// NIO fails writes still pending when a channel closes, and nghttp2 counts a stream done once
    /// its last frames are in our buffers, so an immediate close could cut off the end of a large
    /// answer, its trailers or the GOAWAY when the client reads slowly. `afterWrites: false` (a
    /// failed socket) closes at once.
    private func closeConnection(context: ChannelHandlerContext, afterWrites: Bool = true) {
        guard !closing else { return }
        closing = true
        guard afterWrites, context.channel.isActive else {
            context.close(promise: nil)
            return
        }
        let loop = context.eventLoop.assumeIsolated()
        let written = context.eventLoop.makePromise(of: Void.self)
        // Writes complete in order: this empty one completes after every earlier one.
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(capacity: 0)), promise: written)
        let cap = loop.scheduleTask(in: .seconds(5)) { context.close(promise: nil) }
        written.futureResult.assumeIsolated().whenComplete { _ in
            cap.cancel()
            context.close(promise: nil)
        }
    }

    // MARK: Output

    /// Coalesces output requests from handler tasks into one flush per event-loop tick.
    func scheduleFlush() {
        guard !flushScheduled, !reading, let context else { return }
        flushScheduled = true
        context.eventLoop.assumeIsolated().execute {
            self.flushScheduled = false
            self.flushOutput()
        }
    }

    /// Writes what nghttp2 has queued, in buffers of up to 256 KiB, while the channel is writable.
    func flushOutput() {
        guard let context, !closing else { return }
        let outcome = output.pump(session: session, context: context, isClosing: { self.closing }) { buffer in
            context.writeAndFlush(self.wrapOutboundOut(buffer), promise: nil)
        }
        switch outcome {
        case .reentered: return
        case .sessionFailed:
            closeConnection(context: context)
            return
        case .drained: break
        }
        if closeWhenFlushed || (receivedBytes && !session.wantsRead && !session.wantsWrite) {
            closeConnection(context: context)
        }
    }

    // MARK: Graceful shutdown and keepalive

    /// Starts a graceful shutdown the way gRPC servers do: GOAWAY(2^31-1) and a PING; once the PING is
    /// acknowledged (or after 1 s) the final GOAWAY names the last stream processed. Streams up to it
    /// finish; then the connection closes. No stream the client sent before seeing GOAWAY is lost.
    func startGracefulShutdown() {
        guard !shutdownNoticeSent, let context else { return }
        shutdownNoticeSent = true
        session.submitShutdownNotice()
        session.submitPing()
        flushOutput()
        finalGoAwayTimer = context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(1)) {
            self.sendFinalGoAway()
        }
    }

    private func sendFinalGoAway() {
        guard shutdownNoticeSent, !finalGoAwaySent, let context else { return }
        finalGoAwaySent = true
        finalGoAwayTimer?.cancel()
        session.submitGoAway(errorCode: HTTP2ErrorCode.noError)
        flushOutput()
        if streams.isEmpty { closeConnection(context: context) }
    }

    private func startKeepalive(context: ChannelHandlerContext) {
        guard pingTimer == nil, let interval = configuration.keepalive.pingInterval else { return }
        pingTimer = context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(interval)) {
            self.keepaliveTick()
        }
    }

    private func keepaliveTick() {
        guard let context, !closing, let interval = configuration.keepalive.pingInterval else { return }
        let loop = context.eventLoop.assumeIsolated()
        if !readSinceLastPing && pingTimeout == nil {
            session.submitPing()
            flushOutput()
            pingTimeout = loop.scheduleTask(in: TimeAmount(configuration.keepalive.pingTimeout)) {
                self.logger.debug("keepalive PING not acknowledged; closing")
                if let context = self.context { self.closeConnection(context: context, afterWrites: false) }
            }
        }
        readSinceLastPing = false
        pingTimer = loop.scheduleTask(in: TimeAmount(interval)) { self.keepaliveTick() }
    }

    // MARK: NGHTTP2SessionDelegate

    override func session(_ session: NGHTTP2Session, didReceiveHeaders headers: HeaderBlock, streamID: Int32, endStream: Bool) {
        if let stream = stream(streamID) {
            // Request trailers: only END_STREAM matters.
            if endStream { endOfRequest(stream) }
            return
        }
        startCall(headers: headers, streamID: streamID, endStream: endStream)
    }

    /// `data` is a slice of the buffer being read. The request of a unary or server-streaming call
    /// keeps it: the handler starts (and, on the event loop, decodes the request) before the read
    /// ends, and `ownLentRequests` copies a request still waiting then. Messages of a streaming
    /// request are copied now, since a handler task reads them later.
    override func session(_ session: NGHTTP2Session, didReceiveData data: ByteBuffer, streamID: Int32) {
        guard let stream = stream(streamID) else {
            session.consume(streamID: streamID, bytes: data.readableBytes)
            return
        }
        let collecting = stream.pendingStart != nil
        if let error = stream.inbound.receive(collecting ? data : session.allocator.buffer(buffer: data)) {
            stream.abort(with: error)
        } else if collecting {
            if stream.inbound.messageCount > 1 {
                stream.abort(with: ServerContext.wrongRequestCount(stream.inbound.messageCount))
            } else if stream.inbound.messageCount == 1, lendingStreams.last !== stream {
                lendingStreams.append(stream)
            }
        }
    }

    override func session(_ session: NGHTTP2Session, didReceiveEndStreamOnData streamID: Int32) {
        if let stream = stream(streamID) { endOfRequest(stream) }
    }

    /// The open stream `streamID`, if any.
    private func stream(_ streamID: Int32) -> ServerStream? {
        if let latestStream, latestStream.streamID == streamID { return latestStream }
        return streams[streamID]
    }

    override func session(_ session: NGHTTP2Session, didCloseStream streamID: Int32, errorCode: UInt32) {
        guard let stream = streams.removeValue(forKey: streamID) else { return }
        if latestStream === stream { latestStream = nil }
        if !stream.finished || errorCode != HTTP2ErrorCode.noError { stream.peerClosed(errorCode: errorCode) }
        if spareStreams.count < Self.maxSpareStreams {
            stream.recycle()
            spareStreams.append(stream)
        }
        if streams.isEmpty { scheduleFlush() }
    }

    /// The fields just gathered in `metadataScratch`, as a block the call may keep: the latest
    /// request's when they are the same (no copy), else a copy that becomes the latest.
    private func sharedRequestFields() -> HeaderBlock {
        if !metadataScratch.hasSameFields(as: latestRequestFields) {
            var copy = HeaderBlock()
            copy.reserveCapacity(for: metadataScratch)
            copy.append(contentsOf: metadataScratch)
            latestRequestFields = copy
        }
        return latestRequestFields
    }

    /// A stream for a new call: a recycled one if there is one, otherwise a new one.
    private func makeStream(streamID: Int32, compression: CompressionAlgorithm?) -> ServerStream {
        if let stream = spareStreams.popLast() {
            stream.reuse(streamID: streamID, maxReceiveMessageSize: configuration.maxReceiveMessageSize, compression: compression)
            return stream
        }
        return ServerStream(streamID: streamID, connection: self, maxReceiveMessageSize: configuration.maxReceiveMessageSize, compression: compression)
    }

    /// gRPC's keepalive enforcement: pings too close together (or any, when idle and not permitted)
    /// are strikes; too many end the connection with GOAWAY ENHANCE_YOUR_CALM "too_many_pings".
    override func sessionDidReceivePing(_ session: NGHTTP2Session) {
        let now = NIODeadline.now()
        defer { lastPingReceived = now }
        guard let last = lastPingReceived else { return }
        let policy = configuration.keepalive
        var minimum = TimeAmount(policy.minimumReceivedPingInterval)
        if streams.isEmpty && !policy.permitPingsWithoutCalls { minimum = max(minimum, .hours(2)) }
        guard now - last < minimum else { return }
        pingStrikes += 1
        if pingStrikes > policy.maximumPingStrikes, !closeWhenFlushed {
            logger.debug("too many pings; closing with ENHANCE_YOUR_CALM")
            session.terminate(errorCode: HTTP2ErrorCode.enhanceYourCalm, debugData: "too_many_pings")
            closeWhenFlushed = true
            scheduleFlush()
        }
    }

    /// A handler threw something other than an ``RPCError`` (answered as `UNKNOWN`).
    func logHandlerFailure(method: MethodDescriptor, error: String) {
        logger.debug("handler failed", metadata: ["method": "\(method)", "error": "\(error)"])
    }

    /// The server sent HEADERS or DATA of a call: as in grpc-core, that forgives earlier pings.
    /// Clients ping along with traffic (BDP probes, keepalive during long polls), so only pings
    /// on a connection the server has been silent on count against the policy.
    func didSendCallFrames() {
        pingStrikes = 0
        lastPingReceived = nil
    }

    override func sessionDidReceivePingAck(_ session: NGHTTP2Session) {
        pingTimeout?.cancel()
        pingTimeout = nil
        if shutdownNoticeSent && !finalGoAwaySent { sendFinalGoAway() }
    }

    /// The request half-closed: checks the framing and starts a handler waiting for its request.
    private func endOfRequest(_ stream: ServerStream) {
        if let error = stream.inbound.receiveEnd() {
            stream.abort(with: error)
            return
        }
        // A stream that failed first (reset, deadline, bad framing) was answered and has no pending start.
        guard let serverContext = stream.pendingStart else { return }
        stream.pendingStart = nil
        let messages = stream.inbound.takeAll()
        do throws(RPCError) {
            var message = try ServerContext.exactlyOne(count: messages.count, first: messages.first)
            if taskExecutor != nil, let answerNow = serverContext.serverMethod.answerNow {
                answerImmediately(serverContext, request: message, answerNow, stream: stream)
                return
            }
            // A handler off the event loop starts after this read: it must not share the read buffer.
            if taskExecutor == nil { message = session.allocator.buffer(buffer: message) }
            serverContext.collectedRequest = message
            startHandler(serverContext, stream: stream)
        } catch {
            stream.abort(with: error)
        }
    }

    /// Runs an immediate handler here, inside the read: its response (or error) ends the call at
    /// once; only work it defers gets a task. The request may be a slice of the read buffer: the
    /// handler decodes it before returning, so nothing keeps the buffer.
    private func answerImmediately(
        _ call: ServerContext, request: ByteBuffer,
        _ answerNow: @Sendable (ServerContext, ByteBuffer) throws -> ErasedAnswer, stream: ServerStream
    ) {
        let answer: ErasedAnswer
        do {
            answer = try answerNow(call, request)
        } catch {
            call.fail(with: error)
            return
        }
        switch answer {
        case .now(let response):
            call.finish(status: nil, finalMessage: response)
        case .later(let work):
            guard context != nil, let taskExecutor else { return }
            let task = Task.immediate(executorPreference: taskExecutor) { await call.runLater(work) }
            if !stream.finished { stream.task = task }
        case .callback(let start):
            start { result in
                switch result {
                case .success(let response): call.finish(status: nil, finalMessage: response)
                case .failure(let error): call.fail(with: error)
                }
            }
        }
    }

    // MARK: Starting calls

    private func respondWithoutCall(streamID: Int32, httpStatus: String = "200", status: RPCError, extra: [(String, String)] = []) {
        var headers: [(String, String)] = [(":status", httpStatus), ("content-type", "application/grpc")]
        headers.append(contentsOf: extra)
        headers.append(("grpc-status", String(status.code.rawValue)))
        if !status.message.isEmpty { headers.append(("grpc-message", PercentEncoding.encode(status.message))) }
        session.submitResponse(streamID: streamID, headers: .fields(headers), body: nil)
    }

    private func method(forPath path: UnsafeRawBufferPointer) -> ServerMethod? {
        if let latestPath, latestPath.bytes.withUnsafeBytes({ $0.equals(path) }) { return latestPath.method }
        guard let method = router.handler(forPath: path) else { return nil }
        latestPath = (Array(path), method)
        return method
    }

    /// The algorithms a `grpc-accept-encoding` value names. A client sends the same value on every
    /// call, so the latest one is kept with its bytes and not parsed again.
    private func acceptedCompression(_ value: UnsafeRawBufferPointer) -> [CompressionAlgorithm] {
        if let latestAcceptEncoding, latestAcceptEncoding.bytes.withUnsafeBytes({ $0.equals(value) }) { return latestAcceptEncoding.algorithms }
        let algorithms = value.split(separator: UInt8(ascii: ",")).compactMap {
            CompressionAlgorithm(rawValue: String(decoding: $0.filter { $0 != UInt8(ascii: " ") }, as: UTF8.self))
        }
        latestAcceptEncoding = (Array(value), algorithms)
        return algorithms
    }

    /// Reads what the runtime needs from a request's HEADERS straight from their bytes: a `String`
    /// is built only for rare fields and error messages; custom metadata stays as bytes until a
    /// handler reads it (``Metadata/init(wireFields:)``).
    private func startCall(headers: HeaderBlock, streamID: Int32, endStream: Bool) {
        var handler: ServerMethod?
        var pathField: Int?
        var methodField: Int?
        var isPOST = false
        var contentTypeField: Int?
        var isGRPC = false
        var encoding: String?
        var acceptEncoding: [CompressionAlgorithm] = []
        var timeout: Duration?
        metadataScratch.reset()
        headers.forEachField { index, name, value in
            if name.equals(":path") {
                pathField = index
                handler = method(forPath: value)
            } else if name.equals(":method") {
                methodField = index
                isPOST = value.equals("POST")
            } else if name.equals("content-type") {
                contentTypeField = index
                isGRPC = value.hasPrefix("application/grpc")
            } else if name.equals("grpc-encoding") {
                encoding = String(decoding: value, as: UTF8.self)
            } else if name.equals("grpc-accept-encoding") {
                acceptEncoding = acceptedCompression(value)
            } else if name.equals("grpc-timeout") {
                timeout = GRPCTimeout.parse(value)
            } else if name.first == UInt8(ascii: ":") || name.equals("te") || name.equals("content-length") {
                // The protocol's own; never metadata.
            } else {
                // Metadata (the remaining reserved names are dropped when it is read).
                metadataScratch.append(name: name, value: value)
            }
        }
        guard isGRPC else {
            let contentType = contentTypeField.map { headers.value(at: $0) } ?? ""
            respondWithoutCall(streamID: streamID, httpStatus: "415", status: RPCError(code: .internalError, message: "unsupported content-type \"\(contentType)\"; expected application/grpc"))
            return
        }
        guard isPOST else {
            let method = methodField.map { headers.value(at: $0) } ?? ""
            respondWithoutCall(streamID: streamID, httpStatus: "405", status: RPCError(code: .internalError, message: "gRPC requires POST, got \(method)"))
            return
        }
        guard let handler else {
            let path = pathField.map { headers.value(at: $0) } ?? ""
            let service = MethodDescriptor(path: Substring(path))?.service ?? ""
            let message = router.serviceNames.contains(service) ? "unknown method \(path)" : "unknown service \(service.isEmpty ? path : service)"
            respondWithoutCall(streamID: streamID, status: RPCError(code: .unimplemented, message: message))
            return
        }
        var compression: CompressionAlgorithm?
        if let encoding, encoding != "identity" {
            guard let algorithm = CompressionAlgorithm(rawValue: encoding) else {
                respondWithoutCall(
                    streamID: streamID,
                    status: RPCError(code: .unimplemented, message: "unsupported grpc-encoding \"\(encoding)\""),
                    extra: [("grpc-accept-encoding", CompressionAlgorithm.acceptEncodingHeader)]
                )
                return
            }
            compression = algorithm
        }
        guard !closing, let context else { return }

        pingStrikes = 0
        let stream = makeStream(streamID: streamID, compression: compression)
        streams[streamID] = stream
        latestStream = stream
        let deadline = timeout.map { ContinuousClock.now.advanced(by: $0) }
        let serverContext = ServerContext(
            requestMetadata: Metadata(wireFields: sharedRequestFields()),
            method: handler,
            deadline: deadline,
            peer: peer,
            requestCompression: compression,
            acceptedCompression: acceptEncoding,
            stream: stream,
            eventLoop: context.eventLoop
        )
        if let timeout { armDeadline(of: stream, in: timeout) }

        if configuration.runHandlersOnEventLoop && taskExecutor == nil {
            taskExecutor = EventLoopTaskExecutor(eventLoop: context.eventLoop)
        }
        if handler.takesSingleRequest {
            // Started by `endOfRequest` once the request is complete; a stream that fails first
            // (reset, deadline, bad framing) has already been answered and needs no task.
            stream.pendingStart = serverContext
        } else {
            startHandler(serverContext, stream: stream)
        }
        if endStream { endOfRequest(stream) }
    }

    /// Starts the handler's task. On the event loop (the default) the task starts immediately, inside
    /// this callback: a handler that never suspends answers before nghttp2 returns, with no job
    /// enqueued and no extra event-loop tick, and its response leaves in the flush that ends this read.
    /// After its first suspension it resumes on the event loop like any task with that preference.
    private func startHandler(_ call: ServerContext, stream: ServerStream) {
        guard context != nil else { return }
        // Closures that capture only `call` need no context allocation.
        let task = if let taskExecutor {
            Task.immediate(executorPreference: taskExecutor) { await call.run() }
        } else {
            Task { await call.run() }
        }
        // A handler that already finished needs no cancellation later.
        if !stream.finished { stream.task = task }
    }
}
