import CompressNIO
import NIOCore

/// Writes gRPC length-prefixed messages: a 1-byte compressed flag, a 4-byte big-endian length, the bytes.
///
/// Stateless; safe from any thread. Compression allocates a new buffer per message.
enum MessageFramer {
    /// Frames a request message on the client; a compression failure becomes the call's INTERNAL error.
    static func frameRequest(_ payload: [UInt8], compression: CompressionAlgorithm?) throws(RPCError) -> ByteBuffer {
        do {
            return try frame(payload, compression: compression)
        } catch {
            throw RPCError(code: .internalError, message: "cannot compress request: \(error)")
        }
    }

    /// A request message as the stream's first outbound chunk: uncompressed, its bytes as they
    /// are (framed as nghttp2 copies them out, so the payload is copied once, not twice).
    static func requestChunk(_ payload: [UInt8], compression: CompressionAlgorithm?) throws(RPCError) -> OutboundDataQueue.Chunk {
        compression == nil ? .message(payload) : .bytes(try frameRequest(payload, compression: compression))
    }

    /// Frames `payload`, gzip-compressing it when `compression` is `.gzip`.
    static func frame(_ payload: [UInt8], compression: CompressionAlgorithm?, allocator: ByteBufferAllocator = ByteBufferAllocator()) throws -> ByteBuffer {
        if compression == .gzip {
            var input = allocator.buffer(bytes: payload)
            let compressed = try input.compress(with: CompressNIO.CompressionAlgorithm.gzip(), allocator: allocator)
            var out = allocator.buffer(capacity: compressed.readableBytes + 5)
            out.writeInteger(UInt8(1))
            out.writeInteger(UInt32(compressed.readableBytes))
            out.writeImmutableBuffer(compressed)
            return out
        }
        var out = allocator.buffer(capacity: payload.count + 5)
        out.writeInteger(UInt8(0))
        out.writeInteger(UInt32(payload.count))
        out.writeBytes(payload)
        return out
    }
}
