/// Where serialized outgoing messages of one call go.
protocol MessageSink: Sendable {
    func writeMessage(_ bytes: [UInt8]) async throws(RPCError)
    /// Several messages, in order, as one write where the sink can.
    func writeMessages(_ messages: [[UInt8]]) async throws(RPCError)
}

extension MessageSink {
    func writeMessages(_ messages: [[UInt8]]) async throws(RPCError) {
        for bytes in messages { try await writeMessage(bytes) }
    }
}
