/// Emits Swift value types for messages and enums.
///
/// A message becomes a `struct` conforming to `CBridgedMessage`: stored properties with proto3
/// defaults, a memberwise initialiser, and `init(reading:)` / `write(to:)` that move each field
/// through protobuf-c by field number.
struct MessageGenerator {
    let types: TypeIndex

    func generate(_ message: MessageDef, swiftName: String, into printer: inout CodePrinter) throws {
        let fields = try message.fields.map { try FieldPlan(field: $0, types: types) }
        let oneofs = message.oneofNames.enumerated().compactMap { index, name -> OneofPlan? in
            guard !name.isEmpty else { return nil }
            return OneofPlan(name: name, members: fields.filter { $0.field.oneofIndex == index })
        }
        let plain = fields.filter { $0.field.oneofIndex == nil }
        let typeName = Naming.typeName(message.name)

        let members = plain.map { StoredMember(property: $0.property, type: $0.declaredType, defaultValue: $0.defaultValue, comment: $0.field.comment) }
            + oneofs.map { StoredMember(property: $0.property, type: "\($0.enumName)?", defaultValue: "nil", comment: "") }
        let unknown = StoredMember(
            property: "unknownFields", type: "UnknownFields", defaultValue: "UnknownFields()",
            comment: "Fields this build does not know, kept from decoding and re-emitted on encoding."
        )
        let boxed = Self.usesStorage(message)
        // Where the fields live: the struct itself, or the storage object every copy shares.
        let fieldOwner = boxed ? "s" : "self"

        printer.doc(message.comment)
        try printer.block("public struct \(swiftName.split(separator: ".").last.map(String.init) ?? typeName): CBridgedMessage") { p in
            p.line("public static let protoMessageName = \"\(message.fullName)\"")
            p.line("public static let cMessageType = CMessageType.named(protoMessageName)")
            p.line()
            if boxed {
                generateStorage(members + [unknown], into: &p)
            } else {
                for member in members + [unknown] {
                    p.doc(member.comment)
                    p.line("public var \(member.property): \(member.type) = \(member.defaultValue)")
                }
                p.line()
                p.line("public init() {}")
            }
            if !members.isEmpty {
                p.line()
                let parameters = members.map { "\($0.property): \($0.type) = \($0.defaultValue)" }
                p.block("public init(\(parameters.joined(separator: ", ")))") { p in
                    if boxed {
                        // Any keyword but `inout` is a plain argument label (escaping one is warned about).
                        let arguments = members.map { member in
                            let label = member.property == "`inout`" ? member.property : member.property.filter { $0 != "`" }
                            return "\(label): \(member.property)"
                        }
                        p.line("self._storage = _Storage(\(arguments.joined(separator: ", ")))")
                    } else {
                        for member in members { p.line("self.\(member.property) = \(member.property)") }
                    }
                }
            }
            p.line()
            p.block("public init(reading m: CMessageReader)") { p in
                if boxed { p.line("let s = _Storage()") }
                for plan in plain { p.line("\(fieldOwner).\(plan.property) = \(plan.readExpression)") }
                for oneof in oneofs {
                    guard let first = oneof.members.first else { continue }
                    p.line("switch m.oneofCase(\(first.field.number)) {")
                    for member in oneof.members {
                        p.line("case \(member.field.number): \(fieldOwner).\(oneof.property) = .\(member.property)(\(member.readValue))")
                    }
                    p.line("default: \(fieldOwner).\(oneof.property) = nil")
                    p.line("}")
                }
                p.line("\(fieldOwner).unknownFields = m.unknownFields")
                if boxed { p.line("self._storage = s") }
            }
            p.line()
            p.block("public func write(to m: CMessageWriter)") { p in
                if boxed { p.line("let s = _storage") }
                for plan in plain { p.line(plan.writeStatement(fieldOwner)) }
                for oneof in oneofs {
                    p.line("switch \(fieldOwner).\(oneof.property) {")
                    for member in oneof.members {
                        p.line("case .\(member.property)(let v)?: m.\(member.writer)(\(member.field.number), v)")
                    }
                    p.line("case nil: break")
                    p.line("}")
                }
                p.line("m.setUnknownFields(\(fieldOwner).unknownFields)")
            }
            if boxed {
                p.line()
                p.block("public static func == (lhs: Self, rhs: Self) -> Bool") { p in
                    p.line("if lhs._storage === rhs._storage { return true }")
                    p.line("let l = lhs._storage, r = rhs._storage")
                    let comparisons = (members + [unknown]).map { "l.\($0.property) == r.\($0.property)" }
                    p.line("return " + comparisons.joined(separator: "\n    && "))
                }
            }
            for oneof in oneofs {
                p.line()
                p.block("public enum \(oneof.enumName): Sendable, Equatable") { p in
                    for member in oneof.members {
                        p.doc(member.field.comment)
                        p.line("case \(member.property)(\(member.elementType))")
                    }
                }
            }
            for nested in message.nested where !nested.isMapEntry {
                p.line()
                try generate(nested, swiftName: try types.swiftName(nested.fullName), into: &p)
            }
            for enumeration in message.enums {
                p.line()
                generate(enumeration, swiftName: Naming.typeName(enumeration.name), into: &p)
            }
        }
    }

    /// Whether a message keeps its fields in a shared storage object rather than inline.
    ///
    /// Inline, every copy of a value retains each of its strings, arrays and nested messages' own
    /// (a `Message` with its `SystemProperties` is 41 retains), and a message holding a field of
    /// its own type would be infinitely large. So, as swift-protobuf does, a message with a
    /// singular message field or more than 16 fields is copy-on-write: a copy is one retain. The
    /// rest stay inline, where a small message costs no allocation.
    static func usesStorage(_ message: MessageDef) -> Bool {
        message.fields.count > 16 || message.fields.contains { $0.kind == .message && $0.label != .repeated }
    }

    /// The private storage class, the stored property that holds it, and the public accessors.
    /// Their names start with an underscore, which no field, oneof or nested type of a `.proto`
    /// can produce, so a field called `storage` or a nested message `Storage` cannot collide.
    private func generateStorage(_ members: [StoredMember], into p: inout CodePrinter) {
        let settable = members.filter { $0.property != "unknownFields" }
        p.line("/// The fields, shared by copies of this value until one of them is changed.")
        p.line("/// `@unchecked Sendable`: a storage object is only mutated through `_uniqueStorage`, when no other value holds it.")
        p.block("private final class _Storage: @unchecked Sendable") { p in
            for member in members {
                p.line("@exclusivity(unchecked) var \(member.property): \(member.type) = \(member.defaultValue)")
            }
            p.line()
            p.line("init() {}")
            if !settable.isEmpty {
                p.line()
                p.block("init(\(settable.map { "\($0.property): \($0.type)" }.joined(separator: ", ")))") { p in
                    for member in settable { p.line("self.\(member.property) = \(member.property)") }
                }
            }
            p.line()
            p.block("func _copy() -> _Storage") { p in
                p.line("let result = _Storage()")
                for member in members { p.line("result.\(member.property) = self.\(member.property)") }
                p.line("return result")
            }
        }
        p.line()
        p.line("private var _storage: _Storage")
        p.line()
        p.line("/// The storage, copied first if another value shares it; for every change.")
        p.block("private var _uniqueStorage: _Storage") { p in
            p.block("mutating get") { p in
                p.line("if !isKnownUniquelyReferenced(&_storage) { _storage = _storage._copy() }")
                p.line("return _storage")
            }
        }
        for member in members {
            p.line()
            p.doc(member.comment)
            p.block("public var \(member.property): \(member.type)") { p in
                p.line("get { _storage.\(member.property) }")
                p.line("set { _uniqueStorage.\(member.property) = newValue }")
                p.line("_modify { let s = _uniqueStorage; yield &s.\(member.property) }")
            }
        }
        p.line()
        p.line("public init() { _storage = _Storage() }")
    }

    func generate(_ enumeration: EnumDef, swiftName: String, into printer: inout CodePrinter) {
        let caseNames = Naming.enumCaseNames(enumeration).map(Naming.escaped)
        // Aliases (several names, one number) decode to the first name.
        var seenNumbers = Set<Int32>()
        let primary = zip(enumeration.values, caseNames).filter { seenNumbers.insert($0.0.number).inserted }
        let localName = swiftName.split(separator: ".").last.map(String.init) ?? swiftName

        printer.doc(enumeration.comment)
        printer.block("public enum \(localName): ProtoEnum") { p in
            for (value, name) in primary {
                p.doc(value.comment)
                p.line("case \(name) // = \(value.number)")
            }
            p.line("/// A value this build does not know; kept so it survives re-encoding.")
            p.line("case UNRECOGNIZED(Int32)")
            p.line()
            p.line("public init() { self = .\(primary.first?.1 ?? "UNRECOGNIZED(0)") }")
            p.line()
            p.block("public init(rawValue: Int32)") { p in
                p.line("switch rawValue {")
                for (value, name) in primary { p.line("case \(value.number): self = .\(name)") }
                p.line("default: self = .UNRECOGNIZED(rawValue)")
                p.line("}")
            }
            p.line()
            p.block("public var rawValue: Int32") { p in
                p.line("switch self {")
                for (value, name) in primary { p.line("case .\(name): return \(value.number)") }
                p.line("case .UNRECOGNIZED(let value): return value")
                p.line("}")
            }
            p.line()
            p.block("public var protoName: String?") { p in
                p.line("switch self {")
                for (value, name) in primary { p.line("case .\(name): return \"\(value.name)\"") }
                p.line("case .UNRECOGNIZED: return nil")
                p.line("}")
            }
            p.line()
            p.block("public init?(protoName: String)") { p in
                p.line("switch protoName {")
                for (value, name) in zip(enumeration.values, caseNames) {
                    let target = primary.first { $0.0.number == value.number }?.1 ?? name
                    p.line("case \"\(value.name)\": self = .\(target)")
                }
                p.line("default: return nil")
                p.line("}")
            }
        }
    }
}

/// How one field is declared, read and written.
struct FieldPlan {
    let field: FieldDef
    let property: String
    /// The element type (the field's type without `?`/`[]`).
    let elementType: String
    let declaredType: String
    let defaultValue: String
    let readExpression: String
    /// Reading the value of a oneof member known to be set.
    let readValue: String
    let writer: String
    /// Writing the field's value, read as a property of `owner`.
    let writeStatement: (_ owner: String) -> String

    init(field: FieldDef, types: TypeIndex) throws {
        self.field = field
        let name = Naming.escaped(Naming.lowerCamel(field.name))
        property = name
        let n = field.number

        if field.label == .repeated, let entry = types.mapEntry(field.typeName) {
            guard entry.fields.count == 2 else { throw GeneratorError("map entry \(entry.fullName) needs key and value") }
            let key = try Accessors(entry.fields[0], types: types)
            let value = try Accessors(entry.fields[1], types: types)
            elementType = "[\(key.swiftType): \(value.swiftType)]"
            declaredType = elementType
            defaultValue = "[:]"
            readExpression = "m.map(\(n)) { e in (\(key.read("e", 1)), \(value.readNonOptional("e", 2))) }"
            readValue = readExpression
            writer = "setMap"
            writeStatement = { "m.setMap(\(n), \($0).\(name)) { e, k, v in e.\(key.writer)(1, k); e.\(value.writer)(2, v) }" }
            return
        }

        let accessors = try Accessors(field, types: types)
        elementType = accessors.swiftType
        writer = accessors.writer
        readValue = accessors.readNonOptional("m", n)
        switch field.label {
        case .repeated:
            declaredType = "[\(accessors.swiftType)]"
            defaultValue = "[]"
            readExpression = accessors.readRepeated("m", n)
            writeStatement = { "m.\(accessors.repeatedWriter)(\(n), \($0).\(name))" }
        case _ where field.hasPresence:
            declaredType = accessors.swiftType + "?"
            defaultValue = "nil"
            readExpression = field.kind == .message
                ? accessors.read("m", n)
                : "m.has(\(n)) ? \(accessors.read("m", n)) : nil"
            writeStatement = { "if let v = \($0).\(name) { m.\(accessors.writer)(\(n), v) }" }
        default:
            declaredType = accessors.swiftType
            defaultValue = accessors.defaultValue
            readExpression = accessors.read("m", n)
            if field.kind == .string || field.kind == .bytes {
                writeStatement = { "if !\($0).\(name).isEmpty { m.\(accessors.writer)(\(n), \($0).\(name)) }" }
            } else {
                writeStatement = { "m.\(accessors.writer)(\(n), \($0).\(name))" }
            }
        }
    }
}

/// The runtime accessor names and Swift type for one protobuf type.
private struct Accessors {
    let swiftType: String
    let reader: String
    let writer: String
    let repeatedReader: String
    let repeatedWriter: String
    let defaultValue: String
    /// `as: T.self` for generic accessors (enums, messages).
    let typeArgument: String?
    let isMessage: Bool

    init(_ field: FieldDef, types: TypeIndex) throws {
        switch field.kind {
        case .int32, .sint32, .sfixed32: self.init("Int32", "int32", "Int32", "0")
        case .int64, .sint64, .sfixed64: self.init("Int64", "int64", "Int64", "0")
        case .uint32, .fixed32: self.init("UInt32", "uint32", "UInt32", "0")
        case .uint64, .fixed64: self.init("UInt64", "uint64", "UInt64", "0")
        case .float: self.init("Float", "float", "Float", "0")
        case .double: self.init("Double", "double", "Double", "0")
        case .bool: self.init("Bool", "bool", "Bool", "false")
        case .string: self.init("String", "string", "String", "\"\"")
        case .bytes: self.init("[UInt8]", "bytes", "Bytes", "[]")
        case .enumeration:
            let type = try types.swiftName(field.typeName)
            let defaultCase = types.enumDefault(field.typeName) ?? "\(type)()"
            self.init(type, "enumValue", "Enum", defaultCase, typeArgument: type, repeatedReader: "repeatedEnum")
        case .message:
            let type = try types.swiftName(field.typeName)
            self.init(type, "message", "Message", "\(type)()", typeArgument: type, repeatedReader: "repeatedMessage", isMessage: true)
        case .group:
            throw GeneratorError("proto2 groups are not supported")
        }
    }

    private init(
        _ swiftType: String, _ reader: String, _ writerSuffix: String, _ defaultValue: String,
        typeArgument: String? = nil, repeatedReader: String? = nil, isMessage: Bool = false
    ) {
        self.swiftType = swiftType
        self.reader = reader
        self.writer = "set" + writerSuffix
        self.repeatedReader = repeatedReader ?? "repeated" + writerSuffix
        self.repeatedWriter = "setRepeated" + writerSuffix
        self.defaultValue = defaultValue
        self.typeArgument = typeArgument
        self.isMessage = isMessage
    }

    private func arguments(_ number: Int32) -> String {
        typeArgument.map { "\(number), as: \($0).self" } ?? "\(number)"
    }

    func read(_ reader: String, _ number: Int32) -> String { "\(reader).\(self.reader)(\(arguments(number)))" }
    func readRepeated(_ reader: String, _ number: Int32) -> String { "\(reader).\(repeatedReader)(\(arguments(number)))" }
    /// A value that is never `nil` (absent sub-messages read as their defaults).
    func readNonOptional(_ reader: String, _ number: Int32) -> String {
        isMessage ? "\(read(reader, number)) ?? \(defaultValue)" : read(reader, number)
    }
}

/// One property of a generated message: a field, a oneof, or the unknown fields.
private struct StoredMember {
    let property: String
    let type: String
    let defaultValue: String
    let comment: String
}

/// A real oneof: one optional Swift enum property.
private struct OneofPlan {
    let name: String
    let members: [FieldPlan]
    var property: String { Naming.escaped(Naming.lowerCamel(name)) }
    var enumName: String { "OneOf_" + Naming.upperFirst(Naming.lowerCamel(name)) }
}
