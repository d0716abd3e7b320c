import NIOCore

/// Where serialized messages of one call come from (a server stream's requests or a client's responses).
@usableFromInline
protocol MessageSource: Sendable {
    /// The next message's bytes, or `nil` at the end of the stream.
    func nextMessage() async throws(RPCError) -> ByteBuffer?
}
