import RocketProto

/// Sends the request messages of a client-streaming or bidirectional call.
///
/// `write` suspends while more than the stream's outbound high-water mark is queued (the server's
/// flow-control window or the socket is full). The request stream half-closes when the `requests`
/// closure given to ``RPCChannel`` returns.
public struct RequestWriter<Message: ProtoMessage>: Sendable {
    @usableFromInline let sink: any MessageSink

    @usableFromInline init(sink: any MessageSink) {
        self.sink = sink
    }

    /// Serializes and queues `message`. Throws ``RPCError`` once the call is over.
    @inlinable
    public func write(_ message: Message) async throws {
        try await sink.writeMessage(message.serializedBytes())
    }
}
