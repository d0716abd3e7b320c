import NIOCore

/// Received messages of one stream waiting for their consumer, with flow control tied to demand.
///
/// Confined to the connection's event loop. DATA is returned to the peer's flow-control window
/// (`consume`) right away while the consumer keeps up (less than `lowWater` bytes of complete messages
/// waiting); otherwise the bytes are held unconsumed until the consumer takes messages, so a slow reader
/// stops its peer instead of buffering without bound. Bytes of a message still being assembled are always
/// consumed, so a message larger than the stream window (up to the receive limit) can still arrive.
///
/// Stored properties are `@exclusivity(unchecked)`: the object is confined to one event loop and
/// never re-entered while one of its properties is being mutated, so the runtime's dynamic
/// exclusivity checks (measurable on the per-request path) are skipped.
final class InboundMessageBuffer {
    @exclusivity(unchecked) private var deframer: MessageDeframer
    @exclusivity(unchecked) private var messages = BufferQueue()
    @exclusivity(unchecked) private var bufferedBytes = 0
    @exclusivity(unchecked) private var unconsumedBytes = 0
    @exclusivity(unchecked) private var ended = false
    @exclusivity(unchecked) private var failure: RPCError?
    @exclusivity(unchecked) private var nextWaiter: EventLoopPromise<ByteBuffer?>?
    @exclusivity(unchecked) private var allWaiter: ((Result<[ByteBuffer], RPCError>) -> Void)?
    /// Returns bytes to the HTTP/2 windows; set once the stream ID is known.
    @exclusivity(unchecked) var consume: (Int) -> Void
    private let lowWater: Int

    /// - Parameter consume: returns bytes to the HTTP/2 windows; called on the event loop.
    init(maxMessageSize: Int, compression: CompressionAlgorithm?, lowWater: Int = 256 * 1024, consume: @escaping (Int) -> Void) {
        self.deframer = MessageDeframer(maxMessageSize: maxMessageSize, compression: compression)
        self.consume = consume
        self.lowWater = lowWater
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
                bufferedBytes += message.readableBytes
            }
        } catch let error as DeframingError {
            consume(size)
            return error.rpcError
        } catch {
            consume(size)
            return RPCError(code: .internalError, message: "\(error)")
        }
        unconsumedBytes += size
        if bufferedBytes < lowWater { releaseUnconsumed() }
        deliver()
        return nil
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
        releaseUnconsumed()
        nextWaiter?.fail(error)
        nextWaiter = nil
        let all = allWaiter
        allWaiter = nil
        all?(.failure(error))
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
    /// responses); fails early if more than one message arrives.
    func collectAll(_ promise: EventLoopPromise<[ByteBuffer]>) {
        collectAll { result in
            switch result {
            case .success(let messages): promise.succeed(messages)
            case .failure(let error): promise.fail(error)
            }
        }
    }

    /// Calls `completion` (on the event loop, possibly right away) with every message once the stream
    /// has ended, or with more than one message as soon as a second arrives, or with the failure.
    func collectAll(_ completion: @escaping (Result<[ByteBuffer], RPCError>) -> Void) {
        if nextWaiter != nil || allWaiter != nil {
            completion(.failure(RPCError(code: .failedPrecondition, message: "concurrent reads of one message stream")))
            return
        }
        allWaiter = completion
        deliver()
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
                waiter(.failure(failure))
            } else if ended {
                allWaiter = nil
                let all = messages.all
                messages.removeAll()
                bufferedBytes = 0
                releaseUnconsumed()
                waiter(.success(all))
            } else if messages.count > 1 {
                allWaiter = nil
                waiter(.success(messages.all))
            }
        }
    }

    private func took(_ message: ByteBuffer) {
        bufferedBytes -= message.readableBytes
        if bufferedBytes < lowWater { releaseUnconsumed() }
    }

    private func releaseUnconsumed() {
        if unconsumedBytes > 0 {
            consume(unconsumedBytes)
            unconsumedBytes = 0
        }
    }
}
