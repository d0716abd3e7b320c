import NIOCore

/// Queued outgoing DATA for one stream plus how the stream ends. nghttp2's data provider pulls from it.
///
/// Confined to the connection's event loop. Chunks are held by reference (no copy) until nghttp2 copies
/// them into its frame buffer; an uncompressed message may be queued as its serialized bytes and is
/// framed on the way out, so it is copied once (into the DATA frame) instead of twice.
///
/// Stored properties are `@exclusivity(unchecked)`: the object is confined to one event loop and
/// never re-entered while one of its properties is being mutated, so the runtime's dynamic
/// exclusivity checks (measurable on the per-request path) are skipped.
final class OutboundDataQueue {
    /// Queued bytes, in order.
    enum Chunk {
        /// Bytes sent as they are (framed messages, compressed or not).
        case bytes(ByteBuffer)
        /// One uncompressed message's payload, sent after its 5-byte gRPC prefix.
        case message([UInt8])

        var count: Int {
            switch self {
            case .bytes(let buffer): buffer.readableBytes
            case .message(let payload): 5 + payload.count
            }
        }

        /// Hands `body` the chunk's bytes in `range` (of `0..<count`), in one or two pieces.
        func withBytes(in range: Range<Int>, _ body: (UnsafeRawBufferPointer) -> Void) {
            switch self {
            case .bytes(let buffer):
                buffer.withUnsafeReadableBytes { body(UnsafeRawBufferPointer(rebasing: $0[range])) }
            case .message(let payload):
                if range.lowerBound < 5 {
                    let length = UInt32(payload.count)
                    let prefix: (UInt8, UInt8, UInt8, UInt8, UInt8) = (0, UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF))
                    withUnsafeBytes(of: prefix) { body(UnsafeRawBufferPointer(rebasing: $0[range.lowerBound..<min(5, range.upperBound)])) }
                }
                if range.upperBound > 5 {
                    payload.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[max(0, range.lowerBound - 5)..<(range.upperBound - 5)])) }
                }
            }
        }
    }

    @exclusivity(unchecked) private var chunks = BufferQueue<Chunk>()
    /// Bytes of the first chunk already drained.
    @exclusivity(unchecked) private var drainedOfFirst = 0
    @exclusivity(unchecked) private(set) var queuedBytes = 0
    /// No more data will be queued; after the last byte the stream ends (with trailers if set).
    @exclusivity(unchecked) var isFinished = false
    /// Trailers sent after the data, or `nil` to end the stream on the last DATA frame.
    @exclusivity(unchecked) var trailers: HeaderFields?
    /// A client stream's request header fields, whose bytes nghttp2 points at (not copies) until
    /// it sends or drops the HEADERS frame. Kept here because the session holds this queue until
    /// nghttp2 closes the stream, and nghttp2 reads a request's fields only before that.
    @exclusivity(unchecked) var requestHeaders: HeaderBlock?
    /// nghttp2 returned `NGHTTP2_ERR_DEFERRED` for this stream and needs `resume_data`.
    @exclusivity(unchecked) var isDeferred = false
    /// A writer suspended because more than `highWater` bytes are queued; resumed below `lowWater`.
    @exclusivity(unchecked) var writerWaiter: EventLoopPromise<Void>?
    let highWater: Int
    let lowWater: Int

    init(highWater: Int = 512 * 1024, lowWater: Int = 128 * 1024) {
        self.highWater = highWater
        self.lowWater = lowWater
    }

    /// Empties the queue for a new stream (a server connection reuses its streams' queues): no
    /// chunk, trailers or state of the previous stream survives; a writer still waiting is failed
    /// with `error`.
    func reset(failingWriterWith error: RPCError) {
        failWriter(error)
        chunks.removeAll()
        drainedOfFirst = 0
        queuedBytes = 0
        isFinished = false
        trailers = nil
        isDeferred = false
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

    /// Fails a suspended writer (stream reset, deadline, connection gone). Generic, so that the
    /// error is boxed only when there is a writer to fail.
    func failWriter(_ error: some Error) {
        writerWaiter?.fail(error)
        writerWaiter = nil
    }

    func append(_ buffer: ByteBuffer) {
        append(.bytes(buffer))
    }

    func append(_ chunk: Chunk) {
        queuedBytes += chunk.count
        chunks.append(chunk)
    }

    /// Removes up to `max` bytes from the front, handing each contiguous piece to `body` (valid
    /// only during the call).
    func drain(max: Int, _ body: (UnsafeRawBufferPointer) -> Void) -> Int {
        var taken = 0
        while taken < max, let first = chunks.first {
            let size = first.count
            let n = min(max - taken, size - drainedOfFirst)
            first.withBytes(in: drainedOfFirst..<(drainedOfFirst + n), body)
            taken += n
            drainedOfFirst += n
            if drainedOfFirst == size {
                _ = chunks.popFirst()
                drainedOfFirst = 0
            }
        }
        queuedBytes -= taken
        return taken
    }
}
