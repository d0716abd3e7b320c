/// The proto3 JSON mapping for ``DynamicMessage``s, including the well-known types.
///
/// Output follows protoc's runtimes: lowerCamelCase names (`json_name`), 64-bit integers as strings,
/// bytes as base64, enums by name, NaN/±Infinity as strings, defaults omitted unless
/// ``emitDefaults``; Timestamp as RFC 3339, Duration as `"1.5s"`, wrappers as bare values,
/// Struct/Value/ListValue as plain JSON, FieldMask as a comma-separated string, Any with `@type`.
/// Input accepts what those runtimes accept: original field names as well as JSON names, integers as
/// numbers or strings, enum numbers, URL-safe or unpadded base64, `null` for "not set".
/// Errors name the JSON path that failed (`.payload.body: ...`).
public struct JSONMapping: Sendable {
    /// Resolves nested message and enum types, and the `@type` of `Any` values.
    public var pool: DescriptorPool
    /// Emit fields without presence at their default value (`0`, `""`, `[]`, `{}`).
    public var emitDefaults: Bool
    /// Use `.proto` field names instead of JSON names on output.
    public var useProtoNames: Bool
    /// Skip JSON members that name no field instead of failing.
    public var ignoreUnknownFields: Bool

    /// A mapping over `pool`; defaults match protoc's runtimes (and grpcurl without flags).
    public init(pool: DescriptorPool, emitDefaults: Bool = false, useProtoNames: Bool = false, ignoreUnknownFields: Bool = false) {
        self.pool = pool
        self.emitDefaults = emitDefaults
        self.useProtoNames = useProtoNames
        self.ignoreUnknownFields = ignoreUnknownFields
    }

    // MARK: Message → JSON

    /// The message as pretty-printed JSON text (grpcurl's layout: two-space indent).
    public func string(from message: DynamicMessage, indent: Int = 2) throws(AdminError) -> String {
        try encode(message).serialized(indent: indent)
    }

    /// The message as a JSON value.
    /// - Throws: ``AdminError`` when an `Any` names a type the pool does not know.
    public func encode(_ message: DynamicMessage) throws(AdminError) -> JSONValue {
        if let special = try encodeWellKnown(message) { return special }
        var members: [(String, JSONValue)] = []
        for field in message.descriptor.fields {
            let name = useProtoNames ? field.name : field.jsonName
            if let value = message[field.number] {
                members.append((name, try encodeValue(value, field: field)))
            } else if emitDefaults, !field.hasPresence {
                if field.isMap {
                    members.append((name, .object([])))
                } else if field.isRepeated {
                    members.append((name, .array([])))
                } else if let value = FieldValue.defaultValue(for: field) {
                    members.append((name, try encodeValue(value, field: field)))
                }
            }
        }
        return .object(members)
    }

    func encodeValue(_ value: FieldValue, field: FieldDescriptor) throws(AdminError) -> JSONValue {
        switch value {
        case .list(let elements):
            var out: [JSONValue] = []
            for element in elements { out.append(try encodeValue(element, field: field)) }
            return .array(out)
        case .map(let entries):
            guard let entry = field.mapEntry else { return .object([]) }
            var out: [(String, JSONValue)] = []
            for pair in entries {
                out.append((Self.mapKeyText(pair.key), try encodeValue(pair.value, field: entry.value.field)))
            }
            return .object(out)
        case .message(let message):
            return try encode(message)
        case .enumeration(let number):
            if field.typeName == "google.protobuf.NullValue" { return .null }
            if let name = field.typeName.flatMap(pool.enumType(named:))?.value(number: number)?.name { return .string(name) }
            return .number(String(number))
        default:
            return Self.encodeScalar(value)
        }
    }

    static func encodeScalar(_ value: FieldValue) -> JSONValue {
        switch value {
        case .int32(let v): .number(String(v))
        case .uint32(let v): .number(String(v))
        case .int64(let v): .string(String(v))
        case .uint64(let v): .string(String(v))
        case .float(let v): formatFloating(Double(v), text: v.description, isNaN: v.isNaN, isInfinite: v.isInfinite)
        case .double(let v): formatFloating(v, text: v.description, isNaN: v.isNaN, isInfinite: v.isInfinite)
        case .bool(let v): .bool(v)
        case .string(let v): .string(v)
        case .bytes(let v): .string(Base64Text.encode(v))
        case .enumeration(let v): .number(String(v))
        case .message, .list, .map: .null
        }
    }

    private static func formatFloating(_ v: Double, text: String, isNaN: Bool, isInfinite: Bool) -> JSONValue {
        if isNaN { return .string("NaN") }
        if isInfinite { return .string(v < 0 ? "-Infinity" : "Infinity") }
        if v == v.rounded(), abs(v) < 1e15 { return .number(String(Int64(v))) }
        return .number(text)
    }

    static func mapKeyText(_ key: FieldValue) -> String {
        switch key {
        case .int32(let v): String(v)
        case .int64(let v): String(v)
        case .uint32(let v): String(v)
        case .uint64(let v): String(v)
        case .bool(let v): v ? "true" : "false"
        case .string(let v): v
        default: ""
        }
    }

    // MARK: JSON → message

    /// Parses JSON text as a message of type `descriptor`.
    /// - Throws: ``AdminError/malformedJSON(_:)`` or ``AdminError/invalidJSON(path:reason:)``.
    public func message(fromJSON text: String, as descriptor: MessageDescriptor) throws(AdminError) -> DynamicMessage {
        try decode(JSONParser.parse(text), as: descriptor)
    }

    /// Converts a JSON value to a message of type `descriptor`.
    public func decode(_ json: JSONValue, as descriptor: MessageDescriptor, path: String = "") throws(AdminError) -> DynamicMessage {
        if let special = try decodeWellKnown(json, as: descriptor, path: path) { return special }
        guard case .object(let members) = json else {
            throw .invalidJSON(path: path, reason: "expected a JSON object for message \(descriptor.fullName), got \(json.typeName)")
        }
        return try decodeMembers(members, as: descriptor, path: path)
    }

    func decodeMembers(_ members: [(String, JSONValue)], as descriptor: MessageDescriptor, path: String) throws(AdminError) -> DynamicMessage {
        var message = DynamicMessage(descriptor: descriptor)
        var seen = Set<Int32>()
        var oneofSeen: [Int: String] = [:]
        for (name, value) in members {
            let memberPath = path + "." + name
            guard let field = descriptor.field(named: name) else {
                if ignoreUnknownFields { continue }
                throw .invalidJSON(path: memberPath, reason: "message type \(descriptor.fullName) has no field named \"\(name)\"")
            }
            guard seen.insert(field.number).inserted else {
                throw .invalidJSON(path: memberPath, reason: "field \(field.name) is given more than once")
            }
            // null means "not set", except for google.protobuf.Value where it is the null value.
            if value == .null, field.typeName != "google.protobuf.Value" || field.isRepeated { continue }
            if let oneof = field.oneofIndex {
                if let other = oneofSeen[oneof] {
                    throw .invalidJSON(path: memberPath, reason: "fields \(other) and \(field.name) belong to the same oneof \(descriptor.oneofs[oneof])")
                }
                oneofSeen[oneof] = field.name
            }
            message.set(field, to: try decodeField(value, field: field, path: memberPath))
        }
        return message
    }

    func decodeField(_ json: JSONValue, field: FieldDescriptor, path: String) throws(AdminError) -> FieldValue {
        if let entry = field.mapEntry {
            guard case .object(let members) = json else {
                throw .invalidJSON(path: path, reason: "expected a JSON object for map field \(field.name), got \(json.typeName)")
            }
            var entries: [FieldValue.MapEntry] = []
            for (keyText, valueJSON) in members {
                let entryPath = path + "[\"" + keyText + "\"]"
                let key = try Self.parseMapKey(keyText, kind: entry.key.field.kind, path: entryPath)
                guard valueJSON != .null || entry.value.field.typeName == "google.protobuf.Value" else {
                    throw .invalidJSON(path: entryPath, reason: "map values cannot be null")
                }
                let value = try decodeSingle(valueJSON, field: entry.value.field, path: entryPath)
                entries.removeAll { $0.key == key }
                entries.append(.init(key: key, value: value))
            }
            return .map(entries)
        }
        if field.isRepeated {
            guard case .array(let elements) = json else {
                throw .invalidJSON(path: path, reason: "expected a JSON array for repeated field \(field.name), got \(json.typeName)")
            }
            var out: [FieldValue] = []
            for (index, element) in elements.enumerated() {
                let elementPath = path + "[\(index)]"
                guard element != .null || field.typeName == "google.protobuf.Value" else {
                    throw .invalidJSON(path: elementPath, reason: "repeated field elements cannot be null")
                }
                out.append(try decodeSingle(element, field: field, path: elementPath))
            }
            return .list(out)
        }
        return try decodeSingle(json, field: field, path: path)
    }

    func decodeSingle(_ json: JSONValue, field: FieldDescriptor, path: String) throws(AdminError) -> FieldValue {
        switch field.kind {
        case .message, .group:
            guard let typeName = field.typeName, let type = pool.message(named: typeName) else {
                throw .invalidJSON(path: path, reason: "unknown message type \(field.typeName ?? "?")")
            }
            return .message(try decode(json, as: type, path: path))
        case .enumeration:
            guard let typeName = field.typeName, let type = pool.enumType(named: typeName) else {
                throw .invalidJSON(path: path, reason: "unknown enum type \(field.typeName ?? "?")")
            }
            if typeName == "google.protobuf.NullValue", json == .null { return .enumeration(0) }
            switch json {
            case .string(let name):
                guard let value = type.value(named: name) else {
                    throw .invalidJSON(path: path, reason: "\"\(name)\" is not a value of enum \(type.fullName) (expected one of \(type.values.map(\.name).joined(separator: ", ")))")
                }
                return .enumeration(value.number)
            case .number(let text):
                return .enumeration(try Self.integer(text, Int32.self, path: path))
            default:
                throw .invalidJSON(path: path, reason: "expected an enum name or number for \(field.name), got \(json.typeName)")
            }
        default:
            return try Self.decodeScalar(json, kind: field.kind, path: path)
        }
    }

    static func decodeScalar(_ json: JSONValue, kind: FieldDescriptor.Kind, path: String) throws(AdminError) -> FieldValue {
        let kindName = kind.protoName ?? "value"
        func numericText() throws(AdminError) -> String {
            switch json {
            case .number(let text): return text
            case .string(let text) where !text.isEmpty && text.trimmingSpaces == text: return text
            default: throw .invalidJSON(path: path, reason: "expected a number for \(kindName) field, got \(json.typeName)")
            }
        }
        switch kind {
        case .int32, .sint32, .sfixed32: return .int32(try integer(numericText(), Int32.self, path: path))
        case .int64, .sint64, .sfixed64: return .int64(try integer(numericText(), Int64.self, path: path))
        case .uint32, .fixed32: return .uint32(try integer(numericText(), UInt32.self, path: path))
        case .uint64, .fixed64: return .uint64(try integer(numericText(), UInt64.self, path: path))
        case .float, .double:
            let value: Double
            switch json {
            case .string("NaN"): value = .nan
            case .string("Infinity"): value = .infinity
            case .string("-Infinity"): value = -.infinity
            default:
                let text = try numericText()
                guard let parsed = Double(text), parsed.isFinite else {
                    throw .invalidJSON(path: path, reason: "\"\(text)\" is not a valid \(kindName)")
                }
                value = parsed
            }
            if kind == .float {
                guard value.isNaN || value.isInfinite || abs(value) <= Double(Float.greatestFiniteMagnitude) else {
                    throw .invalidJSON(path: path, reason: "\(value) is out of range for float")
                }
                return .float(Float(value))
            }
            return .double(value)
        case .bool:
            guard case .bool(let b) = json else {
                throw .invalidJSON(path: path, reason: "expected true or false for bool field, got \(json.typeName)")
            }
            return .bool(b)
        case .string:
            guard case .string(let s) = json else {
                throw .invalidJSON(path: path, reason: "expected a string for string field, got \(json.typeName)")
            }
            return .string(s)
        case .bytes:
            guard case .string(let s) = json else {
                throw .invalidJSON(path: path, reason: "expected a base64 string for bytes field, got \(json.typeName)")
            }
            guard let bytes = Base64Text.decode(s) else {
                throw .invalidJSON(path: path, reason: "\"\(s)\" is not valid base64")
            }
            return .bytes(bytes)
        case .enumeration, .message, .group:
            throw .invalidJSON(path: path, reason: "internal: not a scalar kind")
        }
    }

    static func parseMapKey(_ text: String, kind: FieldDescriptor.Kind, path: String) throws(AdminError) -> FieldValue {
        switch kind {
        case .string: return .string(text)
        case .bool:
            switch text {
            case "true": return .bool(true)
            case "false": return .bool(false)
            default: throw .invalidJSON(path: path, reason: "map key \"\(text)\" is not a bool")
            }
        default: return try decodeScalar(.string(text), kind: kind, path: path)
        }
    }

    /// Parses an integer given as JSON number text (`12`, `-3`, `1e3`, `4.0`) into `T`, range-checked.
    static func integer<T: FixedWidthInteger>(_ text: String, _: T.Type, path: String) throws(AdminError) -> T {
        if let exact = T(text) { return exact }
        let typeName = "\(T.self)".lowercased()
        if Int64(text) != nil || UInt64(text) != nil {
            throw .invalidJSON(path: path, reason: "\(text) is out of range for \(typeName)")
        }
        guard let double = Double(text), double.isFinite else {
            throw .invalidJSON(path: path, reason: "\"\(text)\" is not an integer")
        }
        guard double == double.rounded() else { throw .invalidJSON(path: path, reason: "\(text) is not an integer") }
        guard let value = T(exactly: double) else { throw .invalidJSON(path: path, reason: "\(text) is out of range for \(typeName)") }
        return value
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return String(s)
    }

}
