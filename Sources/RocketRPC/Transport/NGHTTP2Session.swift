import NIOCore

/// Receives what an ``NGHTTP2Session`` parses. Called synchronously from inside
/// ``NGHTTP2Session/receive(_:)`` and ``NGHTTP2Session/produceOutput(into:limit:)``, on the
/// connection's event loop; implementations must not re-enter `receive`.
protocol NGHTTP2SessionDelegate: AnyObject {
    /// A complete HEADERS block (request, response, or trailers). `endStream` is the frame's END_STREAM flag.
    func session(_ session: NGHTTP2Session, didReceiveHeaders headers: [(name: String, value: String)], streamID: Int32, endStream: Bool)
    /// A DATA payload chunk (padding excluded). The caller must eventually ``NGHTTP2Session/consume(streamID:bytes:)`` it.
    func session(_ session: NGHTTP2Session, didReceiveData data: ByteBuffer, streamID: Int32)
    /// END_STREAM arrived on a DATA frame.
    func session(_ session: NGHTTP2Session, didReceiveEndStreamOnData streamID: Int32)
    /// The stream is closed (both directions or reset); `errorCode` is 0 for a clean close.
    func session(_ session: NGHTTP2Session, didCloseStream streamID: Int32, errorCode: UInt32)
    /// The peer sent GOAWAY.
    func session(_ session: NGHTTP2Session, didReceiveGoAway lastStreamID: Int32, errorCode: UInt32)
    /// The peer acknowledged one of our PINGs.
    func sessionDidReceivePingAck(_ session: NGHTTP2Session)
    /// The peer sent a PING (nghttp2 answers it automatically); for abuse policing.
    func sessionDidReceivePing(_ session: NGHTTP2Session)
}

/// Which end of the connection a session is.
enum HTTP2Role {
    case client
    case server
}

/// Settings this end advertises, plus limits enforced locally.
struct HTTP2LocalSettings {
    var maxConcurrentStreams: UInt32
    var initialStreamWindow: UInt32
    var connectionWindow: Int32
    var maxHeaderListSize: UInt32
    var maxFrameSize: UInt32 = 16_384
}

/// Queued outgoing DATA for one stream plus how the stream ends. nghttp2's data provider pulls from it.
///
/// Confined to the connection's event loop. Chunks are held by reference (no copy) until nghttp2 copies
/// them into its frame buffer.
final class OutboundDataQueue {
    var chunks = BufferQueue()
    private(set) var queuedBytes = 0
    /// No more data will be queued; after the last byte the stream ends (with trailers if set).
    var isFinished = false
    /// Trailers sent after the data, or `nil` to end the stream on the last DATA frame.
    var trailers: [(String, String)]?
    /// nghttp2 returned `NGHTTP2_ERR_DEFERRED` for this stream and needs `resume_data`.
    var isDeferred = false
    /// A writer suspended because more than `highWater` bytes are queued; resumed below `lowWater`.
    var writerWaiter: EventLoopPromise<Void>?
    let highWater: Int
    let lowWater: Int

    init(highWater: Int = 512 * 1024, lowWater: Int = 128 * 1024) {
        self.highWater = highWater
        self.lowWater = lowWater
    }

    /// Queues a framed message; the promise completes now, or once the queue drains below `lowWater`.
    func enqueue(_ buffer: ByteBuffer, promise: EventLoopPromise<Void>?) {
        append(buffer)
        guard let promise else { return }
        if queuedBytes > highWater {
            writerWaiter?.succeed()
            writerWaiter = promise
        } else {
            promise.succeed()
        }
    }

    /// Called after nghttp2 took bytes: resumes a suspended writer once below `lowWater`.
    func didDrain() {
        if queuedBytes <= lowWater, let waiter = writerWaiter {
            writerWaiter = nil
            waiter.succeed()
        }
    }

    /// Fails a suspended writer (stream reset, deadline, connection gone).
    func failWriter(_ error: Error) {
        writerWaiter?.fail(error)
        writerWaiter = nil
    }

    func append(_ buffer: ByteBuffer) {
        queuedBytes += buffer.readableBytes
        chunks.append(buffer)
    }

    /// Removes up to `max` bytes from the front, handing each contiguous piece to `body`.
    func drain(max: Int, _ body: (ByteBuffer) -> Void) -> Int {
        var taken = 0
        while taken < max, var first = chunks.first {
            let n = min(max - taken, first.readableBytes)
            if let slice = first.readSlice(length: n) { body(slice) }
            taken += n
            if first.readableBytes == 0 {
                _ = chunks.popFirst()
            } else {
                chunks.replaceFirst(first)
            }
        }
        queuedBytes -= taken
        return taken
    }
}

/// One nghttp2 session (one HTTP/2 connection), wrapped so callers never see a C pointer.
///
/// Confined to the connection's event loop: every method must be called there. Owns the
/// `nghttp2_session *` (freed in `deinit`); nghttp2's callbacks reach this object through an unretained
/// `user_data` pointer, valid because the C session never outlives `self`. All pointer work lives in
/// `NGHTTP2Session+CInterop.swift`.
final class NGHTTP2Session {
    let role: HTTP2Role
    weak var delegate: (any NGHTTP2SessionDelegate)?
    /// The C session; `nil` only if nghttp2 failed to allocate.
    var raw: OpaquePointer?
    var outbound: [Int32: OutboundDataQueue] = [:]
    /// The HEADERS block being received. HTTP/2 forbids interleaving header blocks, so there is at
    /// most one: its stream (0 when none or rejected), fields and size so far.
    var headerBlockStream: Int32 = 0
    var headerBlock: [(name: String, value: String)] = []
    var headerBlockBytes = 0
    /// Scratch space reused by every header submission (see `withHeaderFields`).
    var headerScratch: [UInt8] = []
    var headerOffsets: [(Int, Int, Int, Int)] = []
    let maxHeaderListSize: Int
    let allocator: ByteBufferAllocator

    init(role: HTTP2Role, settings: HTTP2LocalSettings, allocator: ByteBufferAllocator) {
        self.role = role
        self.maxHeaderListSize = Int(settings.maxHeaderListSize)
        self.allocator = allocator
        self.createRawSession(settings: settings)
    }

    deinit {
        destroyRawSession()
    }

    /// Registers the outbound queue of a stream whose data provider is (or will be) this session's.
    func registerOutbound(_ queue: OutboundDataQueue, streamID: Int32) {
        outbound[streamID] = queue
    }
}
