import RocketProto

/// A message whose bytes are already encoded: lets ``RocketRPC`` calls, which are generic over
/// `ProtoMessage`, carry messages that ``WireCodec`` encodes and decodes from descriptors.
///
/// Decoding keeps the bytes as they came; encoding returns them unchanged. No copies beyond the one
/// array the bytes live in.
public struct RawMessage: ProtoMessage {
    /// There is no fixed type: the name only appears in RocketRPC's decoding errors.
    public static let protoMessageName = "rocketmq.admin.RawMessage"

    /// The encoded message.
    public var bytes: [UInt8]

    /// No bytes: the encoding of a message with every field at its default.
    public init() { bytes = [] }

    /// Wraps bytes already encoded.
    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// Keeps the bytes as they are; never throws.
    public init(serializedBytes bytes: UnsafeRawBufferPointer) throws {
        self.bytes = Array(bytes)
    }

    /// The wrapped bytes.
    public func serializedBytes() -> [UInt8] { bytes }
}
