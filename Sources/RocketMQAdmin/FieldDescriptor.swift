/// One field of a message type, as the descriptor pool resolved it.
///
/// Value type; immutable once the pool is built. Message and enum types are named (`typeName`,
/// fully qualified, no leading dot) and looked up in the ``DescriptorPool``; map fields carry their
/// entry's key and value fields so codecs need no second lookup.
public struct FieldDescriptor: Sendable, Hashable {
    /// The field's protobuf type.
    public enum Kind: Int32, Sendable, Hashable {
        case double = 1, float, int64, uint64, int32, fixed64, fixed32, bool, string, group, message, bytes
        case uint32 = 13, enumeration, sfixed32, sfixed64, sint32, sint64

        /// The name used in `.proto` source (`int64`, `sfixed32`, ...); `nil` for messages, enums and groups.
        public var protoName: String? {
            switch self {
            case .double: "double"
            case .float: "float"
            case .int64: "int64"
            case .uint64: "uint64"
            case .int32: "int32"
            case .fixed64: "fixed64"
            case .fixed32: "fixed32"
            case .bool: "bool"
            case .string: "string"
            case .bytes: "bytes"
            case .uint32: "uint32"
            case .sfixed32: "sfixed32"
            case .sfixed64: "sfixed64"
            case .sint32: "sint32"
            case .sint64: "sint64"
            case .group, .message, .enumeration: nil
            }
        }

        /// Whether repeated values of this kind may be packed (every scalar but strings and bytes).
        public var isPackable: Bool {
            switch self {
            case .string, .bytes, .message, .group: false
            default: true
            }
        }
    }

    /// The field's name in `.proto` source, for example `response_size`.
    public var name: String
    /// The field number.
    public var number: Int32
    /// The proto3 JSON name (`json_name`, else lowerCamelCase of `name`).
    public var jsonName: String
    /// The field's protobuf type (for a map: `.message`, the entry type).
    public var kind: Kind
    /// For message, group and enum fields, the fully qualified type name (no leading dot).
    public var typeName: String?
    /// `repeated` (map fields included).
    public var isRepeated: Bool
    /// A repeated scalar written packed (proto3 default, or `[packed = true]`).
    public var isPacked: Bool
    /// The field tracks presence: message fields, oneof members, proto3 `optional`, proto2 fields.
    public var hasPresence: Bool
    /// Index into the message's ``MessageDescriptor/oneofs`` for a real (non-synthetic) oneof member.
    public var oneofIndex: Int?
    /// For map fields, the entry's key and value fields.
    public var mapEntry: MapEntry?
    /// `proto3Optional` in the source (`optional` keyword in a proto3 file).
    public var isProto3Optional: Bool
    /// The default value written in proto2 source, as protoc reports it.
    public var defaultValue: String?

    /// The key and value fields of a map field's synthetic entry message.
    public struct MapEntry: Sendable, Hashable {
        /// The entry's field 1.
        public var key: Box
        /// The entry's field 2.
        public var value: Box

        /// Boxes a field so the map-entry fields can live inside their parent field.
        public final class Box: Sendable, Hashable {
            /// The boxed field.
            public let field: FieldDescriptor
            init(_ field: FieldDescriptor) { self.field = field }
            public static func == (a: Box, b: Box) -> Bool { a.field == b.field }
            public func hash(into hasher: inout Hasher) { hasher.combine(field) }
        }
    }

    /// `true` for map fields.
    public var isMap: Bool { mapEntry != nil }

    /// lowerCamelCase of a snake_case name, as protoc computes `json_name`.
    public static func jsonName(for name: String) -> String {
        var result = ""
        var upperNext = false
        for character in name {
            if character == "_" {
                upperNext = true
            } else if upperNext {
                result += character.uppercased()
                upperNext = false
            } else {
                result.append(character)
            }
        }
        return result
    }
}
