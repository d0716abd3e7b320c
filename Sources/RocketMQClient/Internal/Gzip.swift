import CompressNIO
import NIOCore

/// gzip for message bodies (`body_encoding = GZIP`). Each call allocates its output buffer.
enum Gzip {
    static func compress(_ bytes: [UInt8]) throws(RocketMQError) -> [UInt8] {
        var input = ByteBuffer(bytes: bytes)
        do {
            let output = try input.compress(with: CompressNIO.CompressionAlgorithm.gzip())
            return Array(output.readableBytesView)
        } catch {
            throw .invalidArgument("cannot gzip the message body: \(error)")
        }
    }

    static func decompress(_ bytes: [UInt8], maxSize: Int = 64 << 20) throws(RocketMQError) -> [UInt8] {
        var input = ByteBuffer(bytes: bytes)
        do {
            let output = try input.decompress(with: CompressNIO.CompressionAlgorithm.gzip(), maxSize: maxSize)
            return Array(output.readableBytesView)
        } catch {
            throw .status(code: .messageCorrupted, message: "cannot gunzip the message body: \(error)")
        }
    }
}
