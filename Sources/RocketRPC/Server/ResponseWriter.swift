import RocketProto

/// Sends the response messages of a server-streaming or bidirectional call.
///
/// `write` suspends while the stream already has more than its outbound high-water mark queued
/// (the peer's flow-control window or the socket cannot take more), so a fast producer is paced by a
/// slow client. Throws ``RPCError`` (`CANCELLED`, `DEADLINE_EXCEEDED`, ...) once the call is over.
public struct ResponseWriter<Message: ProtoMessage>: Sendable {
    let sink: any MessageSink

    init(sink: any MessageSink) {
        self.sink = sink
    }

    /// Serializes and queues `message`; returns once the runtime accepted it (not once the peer read it).
    public func write(_ message: Message) async throws {
        try await sink.writeMessage(message.serializedBytes())
    }
}
