import NIOCore
import RocketProto

/// Decodes one message, mapping a decoding failure to `INTERNAL` ("cannot decode ...").
/// Inlinable, like the generic call paths that use it, so that each message type gets a specialized copy.
@inlinable
func decodeMessage<M: ProtoMessage>(_ type: M.Type, from buffer: ByteBuffer) throws(RPCError) -> M {
    do {
        return try buffer.withUnsafeReadableBytes { try M(serializedBytes: $0) }
    } catch let error as ProtoDecodingError {
        throw RPCError(code: .internalError, message: error.description)
    } catch {
        throw RPCError(code: .internalError, message: "cannot decode \(M.protoMessageName): \(error)")
    }
}
