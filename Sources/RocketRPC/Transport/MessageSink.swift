/// Where serialized outgoing messages of one call go.
protocol MessageSink: Sendable {
    func writeMessage(_ bytes: [UInt8]) async throws(RPCError)
}
