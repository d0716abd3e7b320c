import RocketMQAPI
import RocketRPC

/// The `google.rpc.Status` a server may attach to an error in the `grpc-status-details-bin`
/// trailer (the "rich error model"): code, message and `Any` details.
///
/// Its descriptor is built here (google/rpc/status.proto is not a well-known type) and is part of
/// every ``DescriptorPool``, so details print like any other message.
public enum RichStatus {
    /// The trailer that carries it.
    public static let trailer = "grpc-status-details-bin"

    /// google/rpc/status.proto's one message, as a file descriptor.
    static var file: Google_Protobuf_FileDescriptorProto {
        func field(_ name: String, _ number: Int32, _ type: Google_Protobuf_FieldDescriptorProto.TypeMessage, repeated: Bool = false, typeName: String? = nil) -> Google_Protobuf_FieldDescriptorProto {
            var field = Google_Protobuf_FieldDescriptorProto()
            field.name = name
            field.number = number
            field.type = type
            field.label = repeated ? .repeated : .optional
            field.typeName = typeName
            field.jsonName = FieldDescriptor.jsonName(for: name)
            return field
        }
        var status = Google_Protobuf_DescriptorProto()
        status.name = "Status"
        status.field = [
            field("code", 1, .int32),
            field("message", 2, .string),
            field("details", 3, .message, repeated: true, typeName: ".google.protobuf.Any"),
        ]
        var file = Google_Protobuf_FileDescriptorProto()
        file.name = "google/rpc/status.proto"
        file.package = "google.rpc"
        file.syntax = "proto3"
        file.dependency = ["google/protobuf/any.proto"]
        file.messageType = [status]
        return file
    }

    /// The details (`google.protobuf.Any` messages) of `error`'s rich status; empty when it has none.
    /// - Throws: ``AdminError/malformedWire(message:reason:)`` when the trailer does not decode.
    public static func details(of error: RPCError, pool: DescriptorPool) throws(AdminError) -> [DynamicMessage] {
        guard let bytes = error.metadata.firstBinary(trailer), let type = pool.message(named: "google.rpc.Status") else { return [] }
        let status = try WireCodec.decode(bytes, as: type, pool: pool)
        guard case .list(let details)? = status["details"] else { return [] }
        return details.compactMap { value in
            if case .message(let any) = value { return any }
            return nil
        }
    }
}
