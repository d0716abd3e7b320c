import NIOCore

/// Moves what an nghttp2 session has queued onto its channel, in buffers of up to 256 KiB,
/// while the channel is writable. Shared by the client and server connection handlers.
///
/// Writing can flip writability and re-enter the handler synchronously (NIO flushes inline); a
/// pump requested while one runs asks the running one for one more pass instead of being lost.
/// Confined to the connection's event loop, like the session; a class because that re-entry
/// would be an overlapping access to a struct.
final class OutputPump {
    @exclusivity(unchecked) private var isPumping = false
    @exclusivity(unchecked) private var pumpAgain = false

    enum Outcome {
        /// Everything queued is written, or the channel stopped being writable.
        case drained
        /// A pump was already running; it will make another pass.
        case reentered
        /// nghttp2 failed to produce output: the connection must close.
        case sessionFailed
    }

    func pump(
        session: NGHTTP2Session, context: ChannelHandlerContext, isClosing: () -> Bool, write: (ByteBuffer) -> Void
    ) -> Outcome {
        guard !isPumping else {
            pumpAgain = true
            return .reentered
        }
        isPumping = true
        defer { isPumping = false }
        // Read once: each `context.channel` is an exclusivity-checked load inside NIO.
        let channel = context.channel
        repeat {
            pumpAgain = false
            while channel.isWritable {
                var buffer: ByteBuffer?
                guard session.produceOutput(into: &buffer, limit: 256 * 1024) else { return .sessionFailed }
                guard let buffer else { break }
                write(buffer)
            }
        } while pumpAgain && !isClosing()
        return .drained
    }
}
