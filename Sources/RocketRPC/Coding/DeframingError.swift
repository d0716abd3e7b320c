/// Why incoming bytes could not be turned into messages.
enum DeframingError: Error, Equatable {
    /// A message's declared (or decompressed) length is over the receive limit.
    case messageTooLarge(size: Int, limit: Int)
    /// The compressed flag was set but the stream has no (or an unsupported) `grpc-encoding`.
    case compressedWithoutEncoding
    /// The compressed flag byte was neither 0 nor 1.
    case invalidFlag(UInt8)
    /// gzip data could not be inflated.
    case decompressionFailed
    /// The stream ended in the middle of a message.
    case truncated(buffered: Int)

    var rpcError: RPCError {
        switch self {
        case .messageTooLarge(let size, let limit):
            RPCError(code: .resourceExhausted, message: "message of \(size) bytes exceeds the maximum receive size of \(limit) bytes")
        case .compressedWithoutEncoding:
            RPCError(code: .internalError, message: "compressed message received but the stream has no grpc-encoding")
        case .invalidFlag(let flag):
            RPCError(code: .internalError, message: "invalid compressed-flag byte \(flag) in message prefix")
        case .decompressionFailed:
            RPCError(code: .internalError, message: "cannot decompress gzip message")
        case .truncated(let buffered):
            RPCError(code: .internalError, message: "stream ended inside a message (\(buffered) bytes of an incomplete length-prefixed message)")
        }
    }
}
