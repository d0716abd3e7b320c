import NIOCore
import Synchronization

/// What a server handler knows about its call, and the response metadata it controls.
///
/// Thread-safe: handlers may use it from any task. Response metadata set after the first response
/// message was written (or after the call ended) is ignored, because the headers are already gone.
///
/// It is also the handler task's side of the call (reads, writes, the final status: see
/// `ServerContext+Call.swift`): one object per call, not a context and a call object that each
/// cost an allocation and retains on every step.
public final class ServerContext: Sendable {
    /// The request's custom metadata (reserved gRPC/HTTP headers excluded).
    public let requestMetadata: Metadata
    /// The called method.
    public var method: MethodDescriptor { serverMethod.descriptor }
    /// The method this call runs. Held instead of a copy of its descriptor: one reference to
    /// retain per call, not three strings.
    let serverMethod: ServerMethod
    /// When the client's `grpc-timeout` runs out, if it sent one. At that instant the runtime answers
    /// `DEADLINE_EXCEEDED` and cancels the handler's task.
    public let deadline: ContinuousClock.Instant?
    /// The peer's address, for example `127.0.0.1:5555`.
    public let peer: String
    /// The `grpc-encoding` of request messages (`nil`: identity).
    public let requestCompression: CompressionAlgorithm?
    /// The encodings the client accepts for responses (`grpc-accept-encoding`).
    public let acceptedCompression: [CompressionAlgorithm]

    private struct State {
        var responseMetadata = Metadata()
        var trailingMetadata = Metadata()
        var responseCompression: CompressionAlgorithm?
    }

    private let state = Mutex(State())

    // The call (see `ServerContext+Call.swift`).

    let eventLoop: any EventLoop
    /// The stream, valid for this call while its ``ServerStream/generation`` is still `generation`
    /// (the connection reuses streams once their calls are over); see `currentStream`. Touched
    /// only on `eventLoop` (`onLoop`, `finish`), which those paths check once: a `NIOLoopBound`
    /// would check again, with a thread-local lookup, on every access.
    nonisolated(unsafe) let stream: ServerStream
    let generation: UInt64
    /// The request of a single-request call, when the runtime collected it before starting the
    /// handler. It may be a slice of the connection's read buffer, so `singleMessage()` takes it
    /// (before the handler's first suspension) instead of the call keeping it while the handler
    /// runs. Set on the event loop before the handler's task starts; afterwards read and cleared
    /// only by that task, once.
    nonisolated(unsafe) var collectedRequest: ByteBuffer?

    init(
        requestMetadata: Metadata,
        method: ServerMethod,
        deadline: ContinuousClock.Instant?,
        peer: String,
        requestCompression: CompressionAlgorithm?,
        acceptedCompression: [CompressionAlgorithm],
        stream: ServerStream,
        eventLoop: any EventLoop
    ) {
        self.requestMetadata = requestMetadata
        self.serverMethod = method
        self.deadline = deadline
        self.peer = peer
        self.requestCompression = requestCompression
        self.acceptedCompression = acceptedCompression
        self.stream = stream
        self.generation = stream.generation
        self.eventLoop = eventLoop
    }

    /// Sets the initial response metadata (sent with the response headers, before the first message).
    public func setResponseMetadata(_ metadata: Metadata) {
        state.withLock { $0.responseMetadata = metadata }
    }

    /// Sets the trailing metadata sent with the status.
    public func setTrailingMetadata(_ metadata: Metadata) {
        state.withLock { $0.trailingMetadata = metadata }
    }

    /// Compresses response messages with `algorithm` if the client accepts it; call before the first write.
    public func setResponseCompression(_ algorithm: CompressionAlgorithm?) {
        state.withLock { $0.responseCompression = algorithm }
    }

    /// The response compression actually used: the one set, if the client accepts it.
    public var responseCompression: CompressionAlgorithm? {
        let wanted = state.withLock { $0.responseCompression }
        guard let wanted, wanted != .identity, acceptedCompression.contains(wanted) else { return nil }
        return wanted
    }

    var responseMetadata: Metadata { state.withLock { $0.responseMetadata } }

    /// Response metadata, trailing metadata and effective response compression, read under one lock.
    var responseSnapshot: (responseMetadata: Metadata, trailingMetadata: Metadata, compression: CompressionAlgorithm?) {
        let (initial, trailing, wanted) = state.withLock { ($0.responseMetadata, $0.trailingMetadata, $0.responseCompression) }
        guard let wanted, wanted != .identity, acceptedCompression.contains(wanted) else { return (initial, trailing, nil) }
        return (initial, trailing, wanted)
    }
}
