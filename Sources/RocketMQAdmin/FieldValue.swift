/// The value of one field of a ``DynamicMessage``: a scalar, a nested message, a list or a map.
///
/// Integers keep their protobuf width and signedness (`sint32` is an `.int32`, `fixed64` a `.uint64`);
/// enums keep their number, known or not.
public indirect enum FieldValue: Sendable, Equatable {
    case int32(Int32)
    case int64(Int64)
    case uint32(UInt32)
    case uint64(UInt64)
    case float(Float)
    case double(Double)
    case bool(Bool)
    case string(String)
    case bytes([UInt8])
    case enumeration(Int32)
    case message(DynamicMessage)
    /// A repeated field's elements, in order.
    case list([FieldValue])
    /// A map field's entries, in the order they were read or set (keys are unique).
    case map([MapEntry])

    /// One entry of a map field.
    public struct MapEntry: Sendable, Equatable {
        /// The key (an integer, bool or string value).
        public var key: FieldValue
        /// The value.
        public var value: FieldValue
        /// An entry.
        public init(key: FieldValue, value: FieldValue) {
            self.key = key
            self.value = value
        }
    }

    /// Field values compare NaN equal to NaN, so a decoded message equals its re-decoded self.
    public static func == (a: FieldValue, b: FieldValue) -> Bool {
        switch (a, b) {
        case (.int32(let x), .int32(let y)): x == y
        case (.int64(let x), .int64(let y)): x == y
        case (.uint32(let x), .uint32(let y)): x == y
        case (.uint64(let x), .uint64(let y)): x == y
        case (.float(let x), .float(let y)): x == y || (x.isNaN && y.isNaN)
        case (.double(let x), .double(let y)): x == y || (x.isNaN && y.isNaN)
        case (.bool(let x), .bool(let y)): x == y
        case (.string(let x), .string(let y)): x == y
        case (.bytes(let x), .bytes(let y)): x == y
        case (.enumeration(let x), .enumeration(let y)): x == y
        case (.message(let x), .message(let y)): x == y
        case (.list(let x), .list(let y)): x == y
        case (.map(let x), .map(let y)): x == y
        default: false
        }
    }

    /// The proto3 default of a singular field of this kind (`nil` for messages: they have no default).
    static func defaultValue(for field: FieldDescriptor) -> FieldValue? {
        switch field.kind {
        case .int32, .sint32, .sfixed32: .int32(0)
        case .int64, .sint64, .sfixed64: .int64(0)
        case .uint32, .fixed32: .uint32(0)
        case .uint64, .fixed64: .uint64(0)
        case .float: .float(0)
        case .double: .double(0)
        case .bool: .bool(false)
        case .string: .string("")
        case .bytes: .bytes([])
        case .enumeration: .enumeration(0)
        case .message, .group: nil
        }
    }

    /// Whether this is the proto3 default (zero, empty, false) that implicit-presence fields omit.
    var isDefault: Bool {
        switch self {
        case .int32(let v): v == 0
        case .int64(let v): v == 0
        case .uint32(let v): v == 0
        case .uint64(let v): v == 0
        case .float(let v): v == 0 && v.sign == .plus
        case .double(let v): v == 0 && v.sign == .plus
        case .bool(let v): !v
        case .string(let v): v.isEmpty
        case .bytes(let v): v.isEmpty
        case .enumeration(let v): v == 0
        case .message: false
        case .list(let v): v.isEmpty
        case .map(let v): v.isEmpty
        }
    }
}
