import NIOCore

/// Queued outgoing DATA for one stream plus how the stream ends. nghttp2's data provider pulls from it.
///
/// Confined to the connection's event loop. Chunks are held by reference (no copy) until nghttp2 copies
/// them into its frame buffer.
///
/// Stored properties are `@exclusivity(unchecked)`: the object is confined to one event loop and
/// never re-entered while one of its properties is being mutated, so the runtime's dynamic
/// exclusivity checks (measurable on the per-request path) are skipped.
final class OutboundDataQueue {
    @exclusivity(unchecked) var chunks = BufferQueue()
    @exclusivity(unchecked) private(set) var queuedBytes = 0
    /// No more data will be queued; after the last byte the stream ends (with trailers if set).
    @exclusivity(unchecked) var isFinished = false
    /// Trailers sent after the data, or `nil` to end the stream on the last DATA frame.
    @exclusivity(unchecked) var trailers: [(String, String)]?
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
