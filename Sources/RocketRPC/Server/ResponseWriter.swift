import RocketProto

/// Sends the response messages of a server-streaming or bidirectional call.
///
/// `write` suspends while the stream already has more than its outbound high-water mark queued
/// (the peer's flow-control window or the socket cannot take more), so a fast producer is paced by a
/// slow client. Throws ``RPCError`` (`CANCELLED`, `DEADLINE_EXCEEDED`, ...) once the call is over.
public struct ResponseWriter<Message: ProtoMessage>: Sendable {
    @usableFromInline let sink: any MessageSink

    @usableFromInline init(sink: any MessageSink) {
        self.sink = sink
    }

    /// Serializes and queues `message`; returns once the runtime accepted it (not once the peer read it).
    @inlinable
    public func write(_ message: Message) async throws {
        try await sink.writeMessage(message.serializedBytes())
    }

    /// Serializes and queues `messages` in order as one write: one hop to the connection and
    /// one wait instead of one per message (a batch of deliveries, say). Same pacing as `write`.
    @inlinable
    public func write(contentsOf messages: some Sequence<Message>) async throws {
        try await sink.writeMessages(messages.map { $0.serializedBytes() })
    }
}
