/// An example request for a message type, as grpcurl's `describe -msg-template` prints it: every
/// field present (scalars at their defaults, one element in each list and map, the first member of
/// each oneof, nested messages filled in), so the JSON shows the whole shape and is valid input.
///
/// A type already being filled higher up is left empty where it recurs, so recursive types end.
public enum MessageTemplate {
    /// The template message for `type`.
    public static func make(_ type: MessageDescriptor, pool: DescriptorPool) -> DynamicMessage {
        var path = Set<String>()
        return make(type, pool: pool, path: &path)
    }

    private static func make(_ type: MessageDescriptor, pool: DescriptorPool, path: inout Set<String>) -> DynamicMessage {
        var message = DynamicMessage(descriptor: type)
        guard path.insert(type.fullName).inserted else { return message }
        defer { path.remove(type.fullName) }
        switch type.fullName {
        case "google.protobuf.Value":
            if let field = type.field(named: "null_value") { message.set(field, to: .enumeration(0)) }
            return message
        case "google.protobuf.Struct", "google.protobuf.ListValue", "google.protobuf.Any":
            return message
        default:
            break
        }
        var oneofsFilled = Set<Int>()
        for field in type.fields {
            if let oneof = field.oneofIndex, !oneofsFilled.insert(oneof).inserted { continue }
            if let entry = field.mapEntry {
                guard let key = FieldValue.defaultValue(for: entry.key.field), let value = value(for: entry.value.field, pool: pool, path: &path) else { continue }
                message.set(field, to: .map([.init(key: key, value: value)]))
            } else if let single = value(for: field, pool: pool, path: &path) {
                message.set(field, to: field.isRepeated ? .list([single]) : single)
            }
        }
        return message
    }

    private static func value(for field: FieldDescriptor, pool: DescriptorPool, path: inout Set<String>) -> FieldValue? {
        if let simple = FieldValue.defaultValue(for: field) { return simple }
        guard let typeName = field.typeName, let nested = pool.message(named: typeName) else { return nil }
        return .message(make(nested, pool: pool, path: &path))
    }
}
