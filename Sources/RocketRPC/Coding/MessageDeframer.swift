import CompressNIO
import NIOCore

/// Reassembles gRPC length-prefixed messages from DATA chunks of one stream.
///
/// Not thread-safe: owned by one stream, used on its connection's event loop. A chunk that holds whole
/// messages is sliced without copying; a message split across chunks is assembled in a buffer that
/// grows with what arrived (doubling, never past the declared length), not sized from the prefix
/// alone: a peer declaring large messages and sending a few bytes of each gets no memory for the
/// rest. The length is checked against `maxMessageSize` before anything is buffered.
struct MessageDeframer {
    var maxMessageSize: Int
    /// `grpc-encoding` of the stream; `nil` or `.identity` means compressed messages are an error.
    var compression: CompressionAlgorithm?

    private var pending: ByteBuffer?
    private var header: (compressed: Bool, length: Int)?

    init(maxMessageSize: Int, compression: CompressionAlgorithm?) {
        self.maxMessageSize = maxMessageSize
        self.compression = compression
    }

    /// Bytes held that do not yet form a whole message.
    var bufferedBytes: Int { pending?.readableBytes ?? 0 }

    /// Bytes the message being assembled has room for (tests).
    var assemblyCapacity: Int { pending?.capacity ?? 0 }

    /// Appends `chunk` and calls `onMessage` for every message it completes.
    mutating func append(_ chunk: ByteBuffer, _ onMessage: (ByteBuffer) throws -> Void) throws {
        var chunk = chunk
        while chunk.readableBytes > 0 || (header != nil && header?.length == 0) {
            if header == nil {
                if var p = pending {
                    // Complete a split prefix.
                    pending = nil
                    let need = 5 - p.readableBytes
                    guard let part = chunk.readSlice(length: min(need, chunk.readableBytes)) else { return }
                    p.writeImmutableBuffer(part)
                    if p.readableBytes < 5 {
                        pending = p
                        return
                    }
                    pending = nil
                    try readHeader(from: &p)
                } else if chunk.readableBytes >= 5 {
                    try readHeader(from: &chunk)
                } else {
                    var p = ByteBufferAllocator().buffer(capacity: 5)
                    p.writeImmutableBuffer(chunk)
                    pending = p
                    return
                }
            }
            guard let (compressed, length) = header else { continue }
            if pending == nil, chunk.readableBytes >= length, let body = chunk.readSlice(length: length) {
                header = nil
                try onMessage(try inflate(body, compressed: compressed))
                continue
            }
            // Take the buffer out of `pending` first so appending does not copy it (copy-on-write).
            let take = min(length - (pending?.readableBytes ?? 0), chunk.readableBytes)
            var p = pending ?? ByteBufferAllocator().buffer(capacity: min(length, max(take, Self.firstAssemblyCapacity)))
            pending = nil
            let needed = p.readableBytes + take
            if needed > p.capacity {
                p.reserveCapacity(min(length, max(needed, p.capacity * 2)))
            }
            if let part = chunk.readSlice(length: take) { p.writeImmutableBuffer(part) }
            if p.readableBytes == length {
                pending = nil
                header = nil
                try onMessage(try inflate(p, compressed: compressed))
            } else {
                pending = p
                return
            }
        }
    }

    /// What a message split across chunks starts with at most, before more of it arrived.
    private static let firstAssemblyCapacity = 64 * 1024

    /// Checks that the stream did not end inside a message.
    func finish() throws {
        if header != nil || pending != nil {
            throw DeframingError.truncated(buffered: bufferedBytes + (header != nil ? 5 : 0))
        }
    }

    private mutating func readHeader(from buffer: inout ByteBuffer) throws {
        guard let flag = buffer.readInteger(as: UInt8.self), let length = buffer.readInteger(as: UInt32.self) else { return }
        guard flag <= 1 else { throw DeframingError.invalidFlag(flag) }
        if flag == 1, compression == nil || compression == .identity { throw DeframingError.compressedWithoutEncoding }
        guard Int(length) <= maxMessageSize else {
            throw DeframingError.messageTooLarge(size: Int(length), limit: maxMessageSize)
        }
        header = (flag == 1, Int(length))
    }

    private func inflate(_ body: ByteBuffer, compressed: Bool) throws -> ByteBuffer {
        guard compressed else { return body }
        var input = body
        do {
            return try input.decompress(with: CompressNIO.CompressionAlgorithm.gzip(), maxSize: maxMessageSize)
        } catch let error as CompressNIOError where error == .bufferOverflow {
            throw DeframingError.messageTooLarge(size: maxMessageSize + 1, limit: maxMessageSize)
        } catch {
            throw DeframingError.decompressionFailed
        }
    }
}
