/// A message of any type known to a ``DescriptorPool``: field values keyed by field number.
///
/// Value type. Only set fields are stored; for implicit-presence (proto3) fields a default value
/// is never stored, so "set" and "present on the wire" agree. Unknown fields read from the wire are
/// kept as raw bytes and written back after the known ones. Encode and decode with ``WireCodec``,
/// map to and from JSON with ``JSONMapping``.
public struct DynamicMessage: Sendable, Equatable {
    /// The message's type.
    public let descriptor: MessageDescriptor
    /// Set fields by number.
    public private(set) var values: [Int32: FieldValue] = [:]
    /// Fields the descriptor does not know, as they were encoded (tag included).
    public var unknownFields: [UInt8] = []

    /// An empty message (every field at its default).
    public init(descriptor: MessageDescriptor) {
        self.descriptor = descriptor
    }

    /// The value of field `number`, or `nil` if it is not set.
    public subscript(number: Int32) -> FieldValue? {
        values[number]
    }

    /// The value of the field with this `.proto` or JSON name, or `nil` if not set.
    public subscript(name: String) -> FieldValue? {
        descriptor.field(named: name).flatMap { values[$0.number] }
    }

    /// Sets a field. Setting a member of a oneof clears the other members; setting an
    /// implicit-presence field to its default, or a list or map to empty, clears it.
    public mutating func set(_ field: FieldDescriptor, to value: FieldValue?) {
        guard let value else {
            values[field.number] = nil
            return
        }
        if let oneof = field.oneofIndex {
            for other in descriptor.fields where other.oneofIndex == oneof && other.number != field.number {
                values[other.number] = nil
            }
        }
        if !field.hasPresence || field.isRepeated, value.isDefault {
            values[field.number] = nil
        } else {
            values[field.number] = value
        }
    }

    /// Sets the field with this `.proto` or JSON name.
    /// - Throws: ``AdminError/invalidJSON(path:reason:)`` when the type has no such field.
    public mutating func set(_ name: String, to value: FieldValue?) throws(AdminError) {
        guard let field = descriptor.field(named: name) else {
            throw .invalidJSON(path: "", reason: "message type \(descriptor.fullName) has no field named \"\(name)\"")
        }
        set(field, to: value)
    }

    /// Fields that are set, in declaration order.
    public var setFields: [(field: FieldDescriptor, value: FieldValue)] {
        descriptor.fields.compactMap { field in values[field.number].map { (field, $0) } }
    }
}
