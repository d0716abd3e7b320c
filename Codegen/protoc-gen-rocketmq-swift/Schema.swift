/// The generator's own view of protoc's descriptors: only what Swift generation needs,
/// already resolved (full names without the leading dot, comments attached).
struct ProtoFile {
    var name: String
    var package: String
    var syntax: String
    var dependencies: [String]
    var messages: [MessageDef]
    var enums: [EnumDef]
    var services: [ServiceDef]
    /// The serialized `FileDescriptorProto` with source info stripped, for reflection.
    var descriptorBytes: [UInt8]
}

struct MessageDef {
    var fullName: String
    var name: String
    var fields: [FieldDef]
    var oneofNames: [String]
    var nested: [MessageDef]
    var enums: [EnumDef]
    var isMapEntry: Bool
    var comment: String
}

struct FieldDef {
    enum Label { case singular, optional, required, repeated }
    enum Kind: Equatable {
        case double, float, int64, uint64, int32, fixed64, fixed32, bool, string, group, message, bytes
        case uint32, enumeration, sfixed32, sfixed64, sint32, sint64
    }

    var name: String
    var number: Int32
    var label: Label
    var kind: Kind
    /// Full name of the message or enum type, for `.message` and `.enumeration`.
    var typeName: String
    /// Index into the message's oneofs for a real (not synthetic) oneof member.
    var oneofIndex: Int?
    /// proto3 `optional`, or a proto2 optional/required field: the value has presence.
    var hasPresence: Bool
    var comment: String
}

struct EnumDef {
    struct Value {
        var name: String
        var number: Int32
        var comment: String
    }

    var fullName: String
    var name: String
    var values: [Value]
    var comment: String
}

struct ServiceDef {
    var fullName: String
    var name: String
    var methods: [MethodDef]
    var comment: String
}

struct MethodDef {
    var name: String
    var inputType: String
    var outputType: String
    var clientStreaming: Bool
    var serverStreaming: Bool
    var comment: String
}

/// Every message and enum in the request (including imported files), by full name.
struct TypeIndex {
    enum Entry {
        case message(MessageDef, swiftName: String)
        case enumeration(EnumDef, swiftName: String)
    }

    private(set) var entries: [String: Entry] = [:]

    init(files: [ProtoFile]) {
        for file in files {
            let prefix = Naming.packagePrefix(file.package)
            for message in file.messages { add(message, swiftName: prefix + Naming.typeName(message.name)) }
            for enumeration in file.enums {
                entries[enumeration.fullName] = .enumeration(enumeration, swiftName: prefix + Naming.typeName(enumeration.name))
            }
        }
    }

    private mutating func add(_ message: MessageDef, swiftName: String) {
        entries[message.fullName] = .message(message, swiftName: swiftName)
        for nested in message.nested { add(nested, swiftName: swiftName + "." + Naming.typeName(nested.name)) }
        for enumeration in message.enums {
            entries[enumeration.fullName] = .enumeration(enumeration, swiftName: swiftName + "." + Naming.typeName(enumeration.name))
        }
    }

    func swiftName(_ fullName: String) throws -> String {
        switch entries[fullName] {
        case .message(_, let name)?, .enumeration(_, let name)?: return name
        case nil: throw GeneratorError("unknown type \(fullName)")
        }
    }

    /// The enum's default (first declared) case as a Swift expression, e.g. `.unspecified`.
    func enumDefault(_ fullName: String) -> String? {
        guard case .enumeration(let enumeration, _)? = entries[fullName],
              let first = Naming.enumCaseNames(enumeration).first else { return nil }
        return "." + Naming.escaped(first)
    }

    /// The entry message when `fullName` is a map's synthesized entry type.
    func mapEntry(_ fullName: String) -> MessageDef? {
        if case .message(let message, _)? = entries[fullName], message.isMapEntry { return message }
        return nil
    }
}

struct GeneratorError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
