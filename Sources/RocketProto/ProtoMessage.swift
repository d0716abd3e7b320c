/// A protobuf message that can cross the wire.
///
/// Generated message types (see `Codegen/`) conform to this protocol; their bytes are produced
/// and consumed by protobuf-c (`protobuf_c_message_pack` / `unpack`) behind the scenes.
/// Conforming types are value types: encoding never mutates, decoding builds a fresh value.
public protocol ProtoMessage: Sendable, Equatable {
    /// Fully qualified protobuf name, for example `grpc.health.v1.HealthCheckRequest`.
    static var protoMessageName: String { get }

    /// A message with every field at its proto3 default.
    init()

    /// Decodes protobuf binary wire format.
    ///
    /// - Throws: ``ProtoDecodingError`` when the bytes are not a valid encoding of this message.
    init(serializedBytes bytes: UnsafeRawBufferPointer) throws

    /// Encodes the message into protobuf binary wire format. Unknown fields kept from decoding are re-emitted.
    func serializedBytes() -> [UInt8]
}

extension ProtoMessage {
    /// Decodes protobuf binary wire format from a byte array.
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try bytes.withUnsafeBytes { try Self(serializedBytes: $0) }
    }
}

/// Why bytes could not be decoded as a given message.
public struct ProtoDecodingError: Error, Sendable, CustomStringConvertible {
    /// The message type that was being decoded.
    public var messageName: String
    /// What went wrong, in words.
    public var reason: String

    public init(messageName: String, reason: String) {
        self.messageName = messageName
        self.reason = reason
    }

    public var description: String { "cannot decode \(messageName): \(reason)" }
}
