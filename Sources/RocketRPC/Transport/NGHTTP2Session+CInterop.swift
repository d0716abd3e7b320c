import CNGHTTP2
import NIOCore

// Every Unsafe*Pointer and every nghttp2 call in RocketRPC lives in this file.
//
// Ownership rules, stated once:
// - `NGHTTP2Session.raw` is owned by the Swift object and freed in `destroyRawSession()` (from deinit).
// - nghttp2's `user_data` is `Unmanaged.passUnretained(session)`: no retain is taken, which is sound
//   because the C session is deleted before the Swift object goes away and callbacks only run inside
//   our own calls into nghttp2 on the event loop.
// - Pointers nghttp2 passes to callbacks (header names, DATA chunks, the frame buffer) are valid only
//   during the callback; their bytes are copied into Swift values (the session's reused
//   `HeaderBlock`, a `ByteBuffer`) before returning.
// - Header name/value arrays we submit are copied by nghttp2 during the submit call, except those of a
//   `PrebuiltHeaderFields` (NO_COPY flags), whose memory is never freed, and a client's request
//   fields (NO_COPY too), whose `HeaderBlock` the stream's `OutboundDataQueue` keeps while
//   `outbound` holds it, until `on_stream_close`. That suffices because nghttp2 (1.52 and later)
//   assigns a request's stream ID at submit but opens the stream only when it prepares the HEADERS
//   frame, and compresses the fields in that same step: the stream cannot close while its fields
//   are still unread. A request dropped before then (reset while queued, GOAWAY) is never read.

/// Runs `body` with the session behind `user_data` without retaining it: the session outlives every
/// callback (see the ownership rules above), and the per-frame callbacks are hot enough that a
/// retain/release pair each showed in profiles. Returns 0 (nghttp2's "ok") without a session.
private func withSession(_ userData: UnsafeMutableRawPointer?, _ body: (NGHTTP2Session) -> Int32) -> Int32 {
    guard let userData else { return 0 }
    return Unmanaged<NGHTTP2Session>.fromOpaque(userData)._withUnsafeGuaranteedRef(body)
}

private let frameHeaders = UInt8(NGHTTP2_HEADERS.rawValue)
private let frameData = UInt8(NGHTTP2_DATA.rawValue)
private let frameGoAway = UInt8(NGHTTP2_GOAWAY.rawValue)
private let framePing = UInt8(NGHTTP2_PING.rawValue)
private let flagEndStream = UInt8(NGHTTP2_FLAG_END_STREAM.rawValue)
private let flagAck = UInt8(NGHTTP2_FLAG_ACK.rawValue)

/// Callbacks shared by every session; the function pointers are non-capturing. Written once here and
/// only read by nghttp2 afterwards (it copies them into each new session), hence `nonisolated(unsafe)`.
nonisolated(unsafe) private let sharedCallbacks: OpaquePointer? = {
    var callbacks: OpaquePointer?
    guard nghttp2_session_callbacks_new(&callbacks) == 0, let callbacks else { return nil }

    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks) { _, frame, userData in
        guard let frame else { return 0 }
        return withSession(userData) { session in
            session.headerBlockStream = frame.pointee.hd.stream_id
            session.headerBlock.reset()
            return 0
        }
    }

    nghttp2_session_callbacks_set_on_header_callback(callbacks) { _, frame, name, nameLength, value, valueLength, _, userData in
        guard let frame, let name, let value else { return 0 }
        return withSession(userData) { session in
            guard frame.pointee.hd.stream_id == session.headerBlockStream else { return 0 }
            if session.headerBlock.listSize + nameLength + valueLength + 32 > session.maxHeaderListSize {
                // Resets just this stream (nghttp2 answers RST_STREAM INTERNAL_ERROR for it).
                session.headerBlockStream = 0
                session.headerBlock.reset()
                return Int32(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
            }
            session.headerBlock.append(name: UnsafeRawBufferPointer(start: name, count: nameLength), value: UnsafeRawBufferPointer(start: value, count: valueLength))
            return 0
        }
    }

    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks) { _, frame, userData in
        guard let frame else { return 0 }
        return withSession(userData) { session in
            session.withDelegate { report(frame, from: session, to: $0) }
            return 0
        }
    }

    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks) { _, _, streamID, data, length, userData in
        guard let data else { return 0 }
        return withSession(userData) { session in
            let delivered = session.withDelegate { delegate in
                delegate.session(session, didReceiveData: session.receivedChunk(UnsafeRawBufferPointer(start: data, count: length)), streamID: streamID)
            }
            if !delivered { _ = nghttp2_session_consume(session.raw, streamID, length) }
            return 0
        }
    }

    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks) { _, streamID, errorCode, userData in
        withSession(userData) { session in
            session.outbound[streamID] = nil
            if session.headerBlockStream == streamID { session.headerBlockStream = 0 }
            session.withDelegate { $0.session(session, didCloseStream: streamID, errorCode: errorCode) }
            return 0
        }
    }
    return callbacks
}()

/// Tells the delegate about a received frame it cares about.
private func report(_ frame: UnsafePointer<nghttp2_frame>, from session: NGHTTP2Session, to delegate: NGHTTP2SessionDelegate) {
    let hd = frame.pointee.hd
    switch hd.type {
    case frameHeaders:
        guard hd.stream_id == session.headerBlockStream else { return }
        session.headerBlockStream = 0
        delegate.session(session, didReceiveHeaders: session.headerBlock, streamID: hd.stream_id, endStream: hd.flags & flagEndStream != 0)
    case frameData:
        if hd.flags & flagEndStream != 0 {
            delegate.session(session, didReceiveEndStreamOnData: hd.stream_id)
        }
    case frameGoAway:
        delegate.session(session, didReceiveGoAway: frame.pointee.goaway.last_stream_id, errorCode: frame.pointee.goaway.error_code)
    case framePing:
        if hd.flags & flagAck != 0 {
            delegate.sessionDidReceivePingAck(session)
        } else {
            delegate.sessionDidReceivePing(session)
        }
    default:
        break
    }
}

/// Pulls queued bytes of one stream into nghttp2's DATA frame buffer.
private func readOutbound(
    _ rawSession: OpaquePointer?,
    _ streamID: Int32,
    _ buf: UnsafeMutablePointer<UInt8>?,
    _ length: Int,
    _ dataFlags: UnsafeMutablePointer<UInt32>?,
    _ source: UnsafeMutablePointer<nghttp2_data_source>?,
    _ userData: UnsafeMutableRawPointer?
) -> Int {
    guard let userData, let buf, let dataFlags, let queuePointer = source?.pointee.ptr else {
        return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
    }
    return Unmanaged<NGHTTP2Session>.fromOpaque(userData)._withUnsafeGuaranteedRef { session in
        Unmanaged<OutboundDataQueue>.fromOpaque(queuePointer)._withUnsafeGuaranteedRef { queue in
            readOutbound(session: session, queue: queue, rawSession, streamID, buf, length, dataFlags)
        }
    }
}

private func readOutbound(
    session: NGHTTP2Session,
    queue: OutboundDataQueue,
    _ rawSession: OpaquePointer?,
    _ streamID: Int32,
    _ buf: UnsafeMutablePointer<UInt8>,
    _ length: Int,
    _ dataFlags: UnsafeMutablePointer<UInt32>
) -> Int {
    var offset = 0
    let copied = queue.drain(max: length) { bytes in
        guard let base = bytes.baseAddress else { return }
        (buf + offset).update(from: base.assumingMemoryBound(to: UInt8.self), count: bytes.count)
        offset += bytes.count
    }
    if queue.queuedBytes == 0 && queue.isFinished {
        dataFlags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
        if let trailers = queue.trailers {
            let rv = session.withHeaderFields(trailers) { nva, count in
                nghttp2_submit_trailer(rawSession, streamID, nva, count)
            }
            if rv == 0 { dataFlags.pointee |= NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue }
        }
    } else if copied == 0 {
        queue.isDeferred = true
        return Int(NGHTTP2_ERR_DEFERRED.rawValue)
    }
    if copied > 0 { queue.didDrain() }
    return copied
}

/// Header fields laid out once as an `nghttp2_nv` array over bytes that are never freed, for the
/// response headers and trailers of plain calls: submitting them builds nothing, and nghttp2 keeps
/// pointers to the names and values instead of copying them (`NO_COPY` flags; names are lower-case,
/// as those flags require).
///
/// Meant for `static let`s: the memory is never freed. A trivial value (a pointer and a count), so
/// passing one along costs no reference counting; every connection's event loop uses the same
/// ones, and a shared reference count would bounce between cores on every call.
struct PrebuiltHeaderFields: @unchecked Sendable {
    fileprivate let nva: UnsafeMutablePointer<nghttp2_nv>
    let count: Int

    /// The fields as text (for the rare paths that add to them).
    var fields: [(String, String)] {
        (0..<count).map { index in
            let field = nva[index]
            return (
                String(decoding: UnsafeBufferPointer(start: field.name, count: field.namelen), as: UTF8.self),
                String(decoding: UnsafeBufferPointer(start: field.value, count: field.valuelen), as: UTF8.self)
            )
        }
    }

    init(_ fields: [(String, String)]) {
        count = fields.count
        nva = .allocate(capacity: max(fields.count, 1))
        let flags = NGHTTP2Session.noCopy
        for (i, (name, value)) in fields.enumerated() {
            let n = Array(name.utf8), v = Array(value.utf8)
            let bytes = UnsafeMutablePointer<UInt8>.allocate(capacity: n.count + v.count + 1)
            bytes.initialize(from: n, count: n.count)
            (bytes + n.count).initialize(from: v, count: v.count)
            (nva + i).initialize(to: nghttp2_nv(name: bytes, value: bytes + n.count, namelen: n.count, valuelen: v.count, flags: flags))
        }
    }
}

extension NGHTTP2Session {
    fileprivate func withHeaderFields<R>(_ fields: HeaderFields, _ body: (UnsafePointer<nghttp2_nv>?, Int) -> R) -> R {
        switch fields {
        case .prebuilt(let prebuilt): body(UnsafePointer(prebuilt.nva), prebuilt.count)
        case .fields(let fields): withHeaderFields(fields, body)
        }
    }

    /// The flags of fields nghttp2 points at instead of copying.
    fileprivate static let noCopy = UInt8(NGHTTP2_NV_FLAG_NO_COPY_NAME.rawValue | NGHTTP2_NV_FLAG_NO_COPY_VALUE.rawValue)

    /// Lays out `block`'s fields as an `nghttp2_nv` array over its bytes, valid for the duration of
    /// `body`. nghttp2 copies the fields during the submit call, unless `flags` say `NO_COPY`:
    /// then the caller keeps `block`'s storage alive until nghttp2 has sent the frame.
    fileprivate func withHeaderFields<R>(
        _ block: HeaderBlock, flags: UInt8 = UInt8(NGHTTP2_NV_FLAG_NONE.rawValue), _ body: (UnsafePointer<nghttp2_nv>?, Int) -> R
    ) -> R {
        withUnsafeTemporaryAllocation(of: nghttp2_nv.self, capacity: max(block.count, 1)) { nva in
            return block.forEachFieldAtOnce { index, name, value in
                nva.initializeElement(at: index, to: nghttp2_nv(
                    name: UnsafeMutablePointer(mutating: name.baseAddress?.assumingMemoryBound(to: UInt8.self)),
                    value: UnsafeMutablePointer(mutating: value.baseAddress?.assumingMemoryBound(to: UInt8.self)),
                    namelen: name.count, valuelen: value.count, flags: flags))
            } then: {
                body(nva.baseAddress.map { UnsafePointer($0) }, block.count)
            }
        }
    }

    /// Lays out `fields` the same way, through `headerScratch`, reused across calls so a
    /// submission costs no allocation once warm. Not re-entrant (no submit happens inside another).
    fileprivate func withHeaderFields<R>(_ fields: [(String, String)], _ body: (UnsafePointer<nghttp2_nv>?, Int) -> R) -> R {
        headerScratch.reset()
        for (name, value) in fields { headerScratch.append(name: name, value: value) }
        return withHeaderFields(headerScratch, body)
    }
}

/// A data provider that pulls from `queue`. Its `source.ptr` is the queue, unretained: the
/// session's `outbound` table owns the queue until nghttp2 closes the stream, and the provider is
/// used only until then, so no lookup by stream ID is needed per DATA frame.
private func makeDataProvider(_ queue: OutboundDataQueue) -> nghttp2_data_provider {
    var provider = nghttp2_data_provider()
    provider.source.ptr = Unmanaged.passUnretained(queue).toOpaque()
    provider.read_callback = { readOutbound($0, $1, $2, $3, $4, $5, $6) }
    return provider
}

/// A failure reported by nghttp2, with its library message.
struct NGHTTP2Error: Error, CustomStringConvertible {
    var code: Int
    var description: String {
        "nghttp2 error \(code): " + String(cString: nghttp2_strerror(Int32(truncatingIfNeeded: code)))
    }
}

extension NGHTTP2Session {
    func createRawSession(settings: HTTP2LocalSettings) {
        guard let callbacks = sharedCallbacks else { return }
        var option: OpaquePointer?
        guard nghttp2_option_new(&option) == 0 else { return }
        defer { nghttp2_option_del(option) }
        nghttp2_option_set_no_auto_window_update(option, 1)
        nghttp2_option_set_max_send_header_block_length(option, 1 << 20)
        // gRPC has no use for RFC 7540 priorities: no dependency tree, and closed streams are
        // dropped at once instead of being kept for it (see the SETTINGS below).
        nghttp2_option_set_no_closed_streams(option, 1)
        let userData = Unmanaged.passUnretained(self).toOpaque()
        var session: OpaquePointer?
        switch role {
        case .server: _ = nghttp2_session_server_new2(&session, callbacks, userData, option)
        case .client: _ = nghttp2_session_client_new2(&session, callbacks, userData, option)
        }
        raw = session
        guard raw != nil else { return }
        var iv: [nghttp2_settings_entry] = [
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue), value: settings.maxConcurrentStreams),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: settings.initialStreamWindow),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue), value: settings.maxHeaderListSize),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_FRAME_SIZE.rawValue), value: settings.maxFrameSize),
        ]
        switch role {
        case .server:
            // RFC 9218: no priority tree (gRPC never uses RFC 7540 priorities, and nghttp2 kept
            // one per stream). A response of more than one DATA frame is made incremental
            // (`makeIncremental`, from `ServerStream`), so streams take turns frame by frame as
            // they did under RFC 7540; otherwise they would go oldest first.
            iv.append(nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES.rawValue), value: 1))
        case .client:
            // A client session cannot set its own streams' RFC 9218 priority in nghttp2 (only
            // signal it to the server), so it keeps RFC 7540's fair sharing between requests.
            iv.append(nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0))
        }
        _ = iv.withUnsafeBufferPointer { nghttp2_submit_settings(raw, UInt8(NGHTTP2_FLAG_NONE.rawValue), $0.baseAddress, $0.count) }
        if settings.connectionWindow > 65_535 {
            _ = nghttp2_session_set_local_window_size(raw, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, settings.connectionWindow)
        }
    }

    func destroyRawSession() {
        if let raw { nghttp2_session_del(raw) }
        raw = nil
    }

    /// Feeds received bytes to nghttp2; delegate callbacks run before this returns.
    /// - Throws: ``NGHTTP2Error`` for fatal errors (bad client preface, flooding, ...); the connection must close.
    func receive(_ buffer: ByteBuffer) throws {
        let rv = buffer.withUnsafeReadableBytes { bytes -> Int in
            guard let base = bytes.baseAddress else { return 0 }
            if slicesReceivedData { receiving = (buffer, base) }
            defer { receiving = nil }
            return nghttp2_session_mem_recv(raw, base.assumingMemoryBound(to: UInt8.self), bytes.count)
        }
        if rv < 0 { throw NGHTTP2Error(code: rv) }
    }

    /// A DATA chunk nghttp2 passed to a callback, as a `ByteBuffer`: a slice of the buffer being
    /// received when the chunk lies in it (nghttp2 passes DATA payloads in place) and
    /// `slicesReceivedData` is set, otherwise a copy.
    fileprivate func receivedChunk(_ bytes: UnsafeRawBufferPointer) -> ByteBuffer {
        if let (buffer, base) = receiving, let start = bytes.baseAddress {
            let offset = start - base
            if offset >= 0, offset + bytes.count <= buffer.readableBytes,
                let slice = buffer.getSlice(at: buffer.readerIndex + offset, length: bytes.count)
            {
                return slice
            }
        }
        return allocator.buffer(bytes: bytes)
    }

    /// Serializes pending frames into `buffer`, stopping once it holds at least `limit` bytes.
    /// The buffer is allocated (16 KiB, or the first frame's size) only once there is a frame
    /// to write: most pumps find nothing pending, since one pass drains what a read produced.
    /// - Returns: `false` if nghttp2 reported a fatal error.
    func produceOutput(into buffer: inout ByteBuffer?, limit: Int) -> Bool {
        while (buffer?.readableBytes ?? 0) < limit {
            var data: UnsafePointer<UInt8>?
            let n = nghttp2_session_mem_send(raw, &data)
            if n < 0 { return false }
            guard n > 0, let data else { break }
            let frame = UnsafeRawBufferPointer(start: data, count: n)
            if buffer == nil { buffer = allocator.buffer(capacity: max(16 * 1024, n)) }
            buffer?.writeBytes(frame)
        }
        return true
    }

    /// Whether nghttp2 still expects to read (false after GOAWAY exchange completes or a fatal error).
    var wantsRead: Bool { raw.map { nghttp2_session_want_read($0) != 0 } ?? false }
    /// Whether nghttp2 has frames to write.
    var wantsWrite: Bool { raw.map { nghttp2_session_want_write($0) != 0 } ?? false }

    /// Sends response HEADERS. With `body`, DATA is pulled from `body` and the stream ends with its
    /// trailers; without, the HEADERS frame ends the stream (a trailers-only response).
    @discardableResult
    func submitResponse(streamID: Int32, headers: HeaderFields, body: OutboundDataQueue?) -> Bool {
        if let body {
            outbound[streamID] = body
            var provider = makeDataProvider(body)
            return withHeaderFields(headers) { nghttp2_submit_response(raw, streamID, $0, $1, &provider) } == 0
        }
        return withHeaderFields(headers) { nghttp2_submit_response(raw, streamID, $0, $1, nil) } == 0
    }

    /// Server side: lets `streamID`'s DATA take turns with other streams' (RFC 9218 incremental,
    /// default urgency) instead of going before every stream opened after it.
    func makeIncremental(streamID: Int32) {
        var priority = nghttp2_extpri(urgency: UInt32(NGHTTP2_EXTPRI_DEFAULT_URGENCY), inc: 1)
        _ = nghttp2_session_change_extpri_stream_priority(raw, streamID, &priority, 0)
    }

    /// Starts a request stream whose body is pulled from `body`.
    /// - Returns: the new stream ID, or `nil` if nghttp2 refused (e.g. after GOAWAY).
    ///
    /// nghttp2 points at the fields' bytes instead of copying (and lower-casing) them, which was
    /// ~2,000 instructions of every call: `body` keeps `headers` until nghttp2 closes the stream.
    /// Names must be lower-case, as HTTP/2 requires anyway: ``Metadata`` lower-cases its keys and
    /// the channel's fixed names are literals.
    func submitRequest(headers: HeaderBlock, body: OutboundDataQueue) -> Int32? {
        var provider = makeDataProvider(body)
        body.requestHeaders = headers
        let streamID = withHeaderFields(headers, flags: Self.noCopy) { nghttp2_submit_request(raw, nil, $0, $1, &provider, nil) }
        guard streamID > 0 else { return nil }
        outbound[streamID] = body
        return streamID
    }

    /// Tells nghttp2 that a stream whose provider was deferred has data (or its end) queued.
    func resumeData(streamID: Int32) {
        guard let queue = outbound[streamID] else { return }
        resumeData(streamID: streamID, queue: queue)
    }

    /// ``resumeData(streamID:)`` for a caller that has the stream's queue at hand (no lookup).
    func resumeData(streamID: Int32, queue: OutboundDataQueue) {
        guard queue.isDeferred else { return }
        queue.isDeferred = false
        _ = nghttp2_session_resume_data(raw, streamID)
    }

    /// Returns `bytes` of received DATA to the flow-control windows (stream and connection).
    func consume(streamID: Int32, bytes: Int) {
        guard bytes > 0 else { return }
        _ = nghttp2_session_consume(raw, streamID, bytes)
    }

    /// Sends RST_STREAM with the given HTTP/2 error code (8 = CANCEL).
    func resetStream(_ streamID: Int32, errorCode: UInt32) {
        _ = nghttp2_submit_rst_stream(raw, UInt8(NGHTTP2_FLAG_NONE.rawValue), streamID, errorCode)
    }

    /// Sends GOAWAY naming the last stream this end processed; streams up to it may finish.
    func submitGoAway(errorCode: UInt32) {
        let last = nghttp2_session_get_last_proc_stream_id(raw)
        _ = nghttp2_submit_goaway(raw, UInt8(NGHTTP2_FLAG_NONE.rawValue), last, errorCode, nil, 0)
    }

    /// Sends the first GOAWAY of a graceful shutdown (last stream 2^31-1): the peer stops opening
    /// streams, but streams already in flight towards us are still processed.
    func submitShutdownNotice() {
        _ = nghttp2_submit_shutdown_notice(raw)
    }

    /// Ends the session with GOAWAY and the given code; no further streams are processed.
    func terminate(errorCode: UInt32) {
        _ = nghttp2_session_terminate_session(raw, errorCode)
    }

    /// Ends the session with GOAWAY carrying `debugData` (e.g. "too_many_pings").
    func terminate(errorCode: UInt32, debugData: String) {
        let last = nghttp2_session_get_last_proc_stream_id(raw)
        var bytes = Array(debugData.utf8)
        _ = bytes.withUnsafeMutableBufferPointer {
            nghttp2_submit_goaway(raw, UInt8(NGHTTP2_FLAG_NONE.rawValue), last, errorCode, $0.baseAddress, $0.count)
        }
    }

    /// Sends a PING (keepalive).
    func submitPing() {
        _ = nghttp2_submit_ping(raw, UInt8(NGHTTP2_FLAG_NONE.rawValue), nil)
    }

    /// Number of streams the peer lets us open that are currently free (client side).
    var remoteMaxConcurrentStreams: UInt32 {
        nghttp2_session_get_remote_settings(raw, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS)
    }
}

/// HTTP/2 error codes used by RocketRPC.
enum HTTP2ErrorCode {
    static let noError: UInt32 = 0
    static let protocolError: UInt32 = 1
    static let internalError: UInt32 = 2
    static let refusedStream: UInt32 = 7
    static let cancel: UInt32 = 8
    static let enhanceYourCalm: UInt32 = 11
}
