import NIOCore

/// Where an ``InboundMessageBuffer`` returns the bytes its consumer has taken: the stream that owns
/// it, which knows its stream ID and connection. Called on the event loop.
protocol InboundWindow: AnyObject {
    /// Returns `bytes` of received DATA to the HTTP/2 flow-control windows and flushes the update.
    func returnToWindow(_ bytes: Int)

    /// The bytes of messages this stream is assembling changed by `delta`: whether the
    /// connection can hold that many more (a negative `delta` always succeeds). On `false`
    /// nothing is counted, and the buffer ends its call.
    func holdAssembling(_ delta: Int) -> Bool
}

extension InboundWindow {
    /// No budget (the client: it reads only what servers it chose to call send it).
    func holdAssembling(_ delta: Int) -> Bool { true }
}

/// Received messages of one stream waiting for their consumer, with flow control tied to demand.
///
/// Confined to the connection's event loop. DATA is returned to the peer's flow-control window
/// (`consume`) right away while the consumer keeps up (less than `lowWater` bytes of complete messages
/// waiting, each counted with a fixed overhead); otherwise the bytes are held unconsumed until the consumer takes messages, so a slow reader
/// stops its peer instead of buffering without bound. Bytes of a message still being assembled are always
/// consumed, so a message larger than the stream window (up to the receive limit) can still arrive.
///
/// Stored properties are `@exclusivity(unchecked)`: the object is confined to one event loop and
/// never re-entered while one of its properties is being mutated, so the runtime's dynamic
/// exclusivity checks (measurable on the per-request path) are skipped.
final class InboundMessageBuffer {
    @exclusivity(unchecked) private var deframer: MessageDeframer
    @exclusivity(unchecked) private var messages = BufferQueue<ByteBuffer>()
    @exclusivity(unchecked) private var bufferedBytes = 0
    @exclusivity(unchecked) private var unconsumedBytes = 0
    /// Bytes of a message being assembled that are counted against the connection's budget
    /// (``InboundWindow/holdAssembling(_:)``).
    @exclusivity(unchecked) private var assemblingHeld = 0
    @exclusivity(unchecked) private var ended = false
    @exclusivity(unchecked) private var failure: RPCError?
    @exclusivity(unchecked) private var nextWaiter: EventLoopPromise<ByteBuffer?>?
    @exclusivity(unchecked) private var allWaiter: EventLoopPromise<[ByteBuffer]>?
    /// The owning stream (which outlives this buffer, hence `unowned(unsafe)`); bytes are dropped
    /// while it is `nil`.
    @exclusivity(unchecked) unowned(unsafe) var window: (any InboundWindow)?
    private let lowWater: Int

    /// What a waiting message counts toward `lowWater` beyond its payload: its queue slot and
    /// buffer, and the 5-byte prefix it arrived with. Counting payload bytes alone let a peer
    /// queue empty messages (5 bytes each on the wire) without ever holding its window back.
    private static let messageOverhead = 64

    private static func cost(of message: ByteBuffer) -> Int { message.readableBytes + messageOverhead }

    init(maxMessageSize: Int, compression: CompressionAlgorithm?, lowWater: Int = 256 * 1024) {
        self.deframer = MessageDeframer(maxMessageSize: maxMessageSize, compression: compression)
        self.lowWater = lowWater
    }

    /// Complete messages waiting for their consumer.
    var messageCount: Int { messages.count }

    /// Empties the buffer for a new stream (a server connection reuses its streams' buffers): no
    /// message, byte count, end or failure of the previous stream survives. Call it only on a
    /// buffer whose stream is closed and failed (``fail(_:)``, which completed any waiter); bytes it
    /// held belonged to that closed stream, whose window no longer matters.
    func reset(maxMessageSize: Int, compression: CompressionAlgorithm?) {
        assert(nextWaiter == nil && allWaiter == nil, "reset with a reader waiting")
        releaseAssembling()
        deframer = MessageDeframer(maxMessageSize: maxMessageSize, compression: compression)
        messages.removeAll()
        bufferedBytes = 0
        unconsumedBytes = 0
        ended = false
        failure = nil
    }

    private func consume(_ bytes: Int) {
        window?.returnToWindow(bytes)
    }

    var isEnded: Bool { ended }

    /// Sets the `grpc-encoding` learned from response headers (client side), before any DATA.
    func setCompression(_ compression: CompressionAlgorithm?) {
        deframer.compression = compression
    }

    /// Feeds one DATA chunk. - Returns: an error if the bytes are not valid gRPC framing (the caller ends the call).
    func receive(_ chunk: ByteBuffer) -> RPCError? {
        let size = chunk.readableBytes
        if failure != nil || ended {
            consume(size)
            return nil
        }
        do {
            try deframer.append(chunk) { message in
                messages.append(message)
                bufferedBytes += Self.cost(of: message)
            }
        } catch let error as DeframingError {
            consume(size)
            return error.rpcError
        } catch {
            consume(size)
            return RPCError(code: .internalError, message: "\(error)")
        }
        unconsumedBytes += size
        let assembling = deframer.bufferedBytes
        if assembling != assemblingHeld {
            guard window?.holdAssembling(assembling - assemblingHeld) ?? true else {
                return RPCError(
                    code: .resourceExhausted,
                    message: "this connection's requests still arriving hold more bytes than the server allows per connection")
            }
            assemblingHeld = assembling
        }
        if bufferedBytes < lowWater { releaseUnconsumed() }
        deliver()
        return nil
    }

    /// Gives the connection back the bytes of the message being assembled, and drops them.
    private func releaseAssembling() {
        if assemblingHeld != 0 {
            _ = window?.holdAssembling(-assemblingHeld)
            assemblingHeld = 0
        }
    }

    /// The peer half-closed. - Returns: an error if it stopped inside a message.
    func receiveEnd() -> RPCError? {
        guard !ended, failure == nil else { return nil }
        ended = true
        do {
            try deframer.finish()
        } catch let error as DeframingError {
            return error.rpcError
        } catch {
            return RPCError(code: .internalError, message: "\(error)")
        }
        deliver()
        return nil
    }

    /// Fails current and future receives with `error` (unless messages are still waiting to be read and
    /// `error` is nil-equivalent). Held bytes are returned to the window.
    func fail(_ error: RPCError) {
        guard failure == nil else { return }
        failure = error
        messages.removeAll()
        bufferedBytes = 0
        // A message left half-assembled is of no use now: its bytes go at once, not when the
        // stream is next reused.
        releaseAssembling()
        deframer = MessageDeframer(maxMessageSize: deframer.maxMessageSize, compression: deframer.compression)
        releaseUnconsumed()
        nextWaiter?.fail(error)
        nextWaiter = nil
        allWaiter?.fail(error)
        allWaiter = nil
    }

    /// Completes `promise` with the next message, or `nil` at the end of the stream.
    func next(_ promise: EventLoopPromise<ByteBuffer?>) {
        if nextWaiter != nil || allWaiter != nil {
            promise.fail(RPCError(code: .failedPrecondition, message: "concurrent reads of one message stream"))
            return
        }
        nextWaiter = promise
        deliver()
    }

    /// Completes `promise` with every message once the stream has ended (unary and client-streaming
    /// responses), or with more than one message as soon as a second arrives, or with the failure.
    func collectAll(_ promise: EventLoopPromise<[ByteBuffer]>) {
        if nextWaiter != nil || allWaiter != nil {
            promise.fail(RPCError(code: .failedPrecondition, message: "concurrent reads of one message stream"))
            return
        }
        allWaiter = promise
        deliver()
    }

    /// Replaces each waiting message that is a slice of `buffer` (a read buffer a DATA chunk was
    /// sliced from) with a copy, so that keeping it does not keep the whole read buffer. A slice's
    /// bytes lie inside `buffer`'s readable bytes; no other buffer's can while `buffer` is alive.
    func ownMessages(slicedFrom buffer: ByteBuffer) {
        guard !messages.isEmpty else { return }
        buffer.withUnsafeReadableBytes { read in
            guard let start = read.baseAddress.map(UInt.init(bitPattern:)) else { return }
            let span = start..<(start + UInt(read.count))
            messages.updateEach { message in
                let inside = message.withUnsafeReadableBytes { $0.baseAddress.map { span.contains(UInt(bitPattern: $0)) } ?? false }
                if inside { message = ByteBufferAllocator().buffer(buffer: message) }
            }
        }
    }

    /// Takes every waiting message at once (the server's single request, read without a waiter)
    /// and returns their bytes to the window.
    func takeAll() -> BufferQueue<ByteBuffer> {
        let all = messages
        messages.removeAll()
        bufferedBytes = 0
        releaseUnconsumed()
        return all
    }

    private func deliver() {
        if let waiter = nextWaiter {
            if let message = messages.popFirst() {
                nextWaiter = nil
                took(message)
                waiter.succeed(message)
            } else if let failure {
                nextWaiter = nil
                waiter.fail(failure)
            } else if ended {
                nextWaiter = nil
                waiter.succeed(nil)
            }
        } else if let waiter = allWaiter {
            if let failure {
                allWaiter = nil
                waiter.fail(failure)
            } else if ended {
                allWaiter = nil
                waiter.succeed(takeAll().all)
            } else if messages.count > 1 {
                allWaiter = nil
                waiter.succeed(messages.all)
            }
        }
    }

    private func took(_ message: ByteBuffer) {
        bufferedBytes -= Self.cost(of: message)
        if bufferedBytes < lowWater { releaseUnconsumed() }
    }

    private func releaseUnconsumed() {
        if unconsumedBytes > 0 {
            consume(unconsumedBytes)
            unconsumedBytes = 0
        }
    }
}
