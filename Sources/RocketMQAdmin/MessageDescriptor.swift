/// A message type as the ``DescriptorPool`` resolved it: fields in declaration order, oneofs,
/// and whether it is a synthetic map entry.
///
/// Value type; cheap to copy (its arrays are shared copy-on-write).
public struct MessageDescriptor: Sendable, Hashable {
    /// Fully qualified name, for example `grpc.testing.SimpleRequest`.
    public var fullName: String
    /// Fields in declaration order.
    public var fields: [FieldDescriptor]
    /// Names of the real oneofs (synthetic proto3-optional oneofs are left out of member fields'
    /// ``FieldDescriptor/oneofIndex`` but kept here so indexes line up with the source).
    public var oneofs: [String]
    /// A `map<K, V>` field's generated entry type.
    public var isMapEntry: Bool
    /// `proto2` or `proto3` (or `editions`).
    public var syntax: String
    /// The `.proto` file that declares it.
    public var fileName: String

    private var indexByNumber: [Int32: Int]
    private var indexByName: [String: Int]

    init(fullName: String, fields: [FieldDescriptor], oneofs: [String], isMapEntry: Bool, syntax: String, fileName: String) {
        self.fullName = fullName
        self.fields = fields
        self.oneofs = oneofs
        self.isMapEntry = isMapEntry
        self.syntax = syntax
        self.fileName = fileName
        var byNumber: [Int32: Int] = [:]
        var byName: [String: Int] = [:]
        for (index, field) in fields.enumerated() {
            byNumber[field.number] = index
            byName[field.name] = index
            if byName[field.jsonName] == nil { byName[field.jsonName] = index }
        }
        self.indexByNumber = byNumber
        self.indexByName = byName
    }

    /// The field with this number.
    public func field(number: Int32) -> FieldDescriptor? {
        indexByNumber[number].map { fields[$0] }
    }

    /// The field with this `.proto` name or JSON name (proto3 JSON parsers accept both).
    public func field(named name: String) -> FieldDescriptor? {
        indexByName[name].map { fields[$0] }
    }

    /// The last component of the full name.
    public var name: String { fullName.split(separator: ".").last.map(String.init) ?? fullName }
}
