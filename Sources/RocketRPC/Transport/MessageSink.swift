/// Where serialized outgoing messages of one call go.
@usableFromInline
protocol MessageSink: Sendable {
    func writeMessage(_ bytes: [UInt8]) async throws(RPCError)
    /// Several messages, in order, as one write where the sink can.
    func writeMessages(_ messages: [[UInt8]]) async throws(RPCError)
}

extension MessageSink {
    @usableFromInline func writeMessages(_ messages: [[UInt8]]) async throws(RPCError) {
        for bytes in messages { try await writeMessage(bytes) }
    }
}
