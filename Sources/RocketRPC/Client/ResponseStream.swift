import RocketProto

/// The response messages of a server-streaming or bidirectional call, as an async sequence.
///
/// Taking messages is what opens the server's flow-control window, so a slow reader slows the
/// server. The sequence ends normally on an OK status and throws the ``RPCError`` of any other
/// status once the messages before it were read. One iterator at a time.
public struct ResponseStream<Message: ProtoMessage>: AsyncSequence, Sendable {
    public typealias Element = Message
    public typealias Failure = RPCError

    @usableFromInline let call: ClientCall

    @usableFromInline init(call: ClientCall) {
        self.call = call
    }

    /// The response headers' custom metadata; throws if the call failed before they arrived.
    public var initialMetadata: Metadata {
        get async throws { try await call.initialMetadata() }
    }

    /// The trailers' custom metadata (waits for the end of the call).
    public var trailingMetadata: Metadata {
        get async throws { try await call.status().metadata }
    }

    /// Takes response messages one at a time; each `next()` hops to the connection's event loop.
    public struct AsyncIterator: AsyncIteratorProtocol {
        public typealias Element = Message
        public typealias Failure = RPCError
        @usableFromInline let call: ClientCall
        @usableFromInline var finished = false

        @usableFromInline init(call: ClientCall) { self.call = call }

        /// The next response; `nil` after an OK status; throws the status if it is not OK.
        @inlinable
        public mutating func next() async throws(RPCError) -> Message? {
            guard !finished else { return nil }
            if let buffer = try await call.nextMessage() {
                return try decodeMessage(Message.self, from: buffer)
            }
            finished = true
            let status = try await call.status()
            if status.code != .ok { throw status }
            return nil
        }
    }

    @inlinable
    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(call: call)
    }
}
