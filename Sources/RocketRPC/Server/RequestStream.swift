import NIOCore
import RocketProto

/// The request messages of a client-streaming or bidirectional call, as an async sequence.
///
/// Iterating is what drives HTTP/2 flow control: the runtime opens the peer's window only as messages
/// are taken, so a slow consumer slows its client. Ends (`nil`) when the client half-closes; throws
/// ``RPCError`` if the call fails (bad framing, undecodable message, cancellation). One iterator at a time.
public struct RequestStream<Message: ProtoMessage>: AsyncSequence, Sendable {
    public typealias Element = Message
    public typealias Failure = RPCError

    @usableFromInline let source: any MessageSource

    @usableFromInline init(source: any MessageSource) {
        self.source = source
    }

    /// Takes request messages one at a time; each `next()` hops to the connection's event loop.
    public struct AsyncIterator: AsyncIteratorProtocol {
        public typealias Element = Message
        public typealias Failure = RPCError
        @usableFromInline let source: any MessageSource

        @usableFromInline init(source: any MessageSource) { self.source = source }

        /// The next request, or `nil` once the client half-closed.
        @inlinable
        public mutating func next() async throws(RPCError) -> Message? {
            guard let buffer = try await source.nextMessage() else { return nil }
            return try decodeMessage(Message.self, from: buffer)
        }
    }

    @inlinable
    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(source: source)
    }
}
