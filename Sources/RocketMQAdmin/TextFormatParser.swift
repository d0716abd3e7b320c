/// Parses protobuf text format (`name: value`, `sub { … }`) into ``DynamicMessage``s, for
/// `-format text` input: the common subset (scalars, enums by name or number, strings with C
/// escapes, nested messages in `{}` or `<>`, `[a, b]` lists, maps as repeated entries). The `Any`
/// expansion syntax `[type.googleapis.com/…]` and extensions are not supported.
public struct TextFormatParser {
    private let scalars: [Unicode.Scalar]
    private var position = 0
    private let pool: DescriptorPool

    init(_ text: String, pool: DescriptorPool) {
        self.scalars = Array(text.unicodeScalars)
        self.pool = pool
    }

    /// Parses one message in text format.
    /// - Throws: ``AdminError/malformedText(_:)``.
    public static func parse(_ text: String, as descriptor: MessageDescriptor, pool: DescriptorPool) throws(AdminError) -> DynamicMessage {
        var parser = TextFormatParser(text, pool: pool)
        let message = try parser.messageBody(descriptor, closing: nil)
        return message
    }

    /// Parses messages separated by the ASCII record separator (0x1E), as grpcurl reads them.
    /// Empty input means no messages.
    public static func parseStream(_ text: String, as descriptor: MessageDescriptor, pool: DescriptorPool) throws(AdminError) -> [DynamicMessage] {
        guard !text.allSatisfy({ $0.isWhitespace }) else { return [] }
        var messages: [DynamicMessage] = []
        for part in text.split(separator: "\u{1E}", omittingEmptySubsequences: false) {
            messages.append(try parse(String(part), as: descriptor, pool: pool))
        }
        return messages
    }

    private mutating func skipSpace() {
        while position < scalars.count {
            if scalars[position] == "#" {
                while position < scalars.count, scalars[position] != "\n" { position += 1 }
            } else if scalars[position].properties.isWhitespace {
                position += 1
            } else {
                return
            }
        }
    }

    private mutating func peek() -> Unicode.Scalar? {
        skipSpace()
        return position < scalars.count ? scalars[position] : nil
    }

    private mutating func consume(_ scalar: Unicode.Scalar) -> Bool {
        if peek() == scalar {
            position += 1
            return true
        }
        return false
    }

    private mutating func identifier() throws(AdminError) -> String {
        skipSpace()
        var out = ""
        while position < scalars.count {
            let c = scalars[position]
            guard c.properties.isAlphabetic || ("0"..."9").contains(c) || c == "_" || c == "." || c == "-" || c == "+" else { break }
            out.unicodeScalars.append(c)
            position += 1
        }
        guard !out.isEmpty else { throw .malformedText("expected a name or value at offset \(position)") }
        return out
    }

    private mutating func messageBody(_ descriptor: MessageDescriptor, closing: Unicode.Scalar?) throws(AdminError) -> DynamicMessage {
        var message = DynamicMessage(descriptor: descriptor)
        while true {
            let next = peek()
            if next == nil {
                if let closing { throw .malformedText("missing '\(closing)' in \(descriptor.fullName)") }
                return message
            }
            if let closing, next == closing {
                position += 1
                return message
            }
            let name = try identifier()
            guard let field = descriptor.fields.first(where: { $0.name == name }) else {
                throw .malformedText("message type \(descriptor.fullName) has no field named \"\(name)\"")
            }
            let hasColon = consume(":")
            var values: [FieldValue] = []
            if consume("[") {
                if !consume("]") {
                    repeat { values.append(try value(for: field, hasColon: true)) } while consume(",")
                    guard consume("]") else { throw .malformedText("expected ']' after the list for \(name)") }
                }
            } else {
                values.append(try value(for: field, hasColon: hasColon))
            }
            _ = consume(",") || consume(";")
            if field.isRepeated {
                var existing: [FieldValue] = []
                if case .list(let old)? = message[field.number] { existing = old }
                if field.isMap {
                    var entries: [FieldValue.MapEntry] = []
                    if case .map(let old)? = message[field.number] { entries = old }
                    for case .message(let entry) in values {
                        let key = entry[1] ?? field.mapEntry.flatMap { FieldValue.defaultValue(for: $0.key.field) } ?? .string("")
                        let val = entry[2] ?? field.mapEntry.flatMap { FieldValue.defaultValue(for: $0.value.field) } ?? .int32(0)
                        entries.removeAll { $0.key == key }
                        entries.append(.init(key: key, value: val))
                    }
                    message.set(field, to: .map(entries))
                } else {
                    message.set(field, to: .list(existing + values))
                }
            } else if let last = values.last {
                message.set(field, to: last)
            }
        }
    }

    private mutating func value(for field: FieldDescriptor, hasColon: Bool) throws(AdminError) -> FieldValue {
        if field.kind == .message || field.kind == .group {
            guard let typeName = field.typeName, let type = pool.message(named: typeName) else {
                throw .malformedText("unknown message type for \(field.name)")
            }
            if consume("{") { return .message(try messageBody(type, closing: "}")) }
            if consume("<") { return .message(try messageBody(type, closing: ">")) }
            throw .malformedText("expected '{' after \(field.name)")
        }
        guard hasColon else { throw .malformedText("expected ':' after \(field.name)") }
        if peek() == "\"" || peek() == "'" {
            var bytes: [UInt8] = []
            while let quote = peek(), quote == "\"" || quote == "'" {
                bytes += try quoted()
            }
            switch field.kind {
            case .string:
                guard let text = String(validating: bytes, as: UTF8.self) else { throw .malformedText("\(field.name) is not valid UTF-8") }
                return .string(text)
            case .bytes: return .bytes(bytes)
            default: throw .malformedText("\(field.name) does not take a string")
            }
        }
        let token = try identifier()
        if field.kind == .enumeration {
            if let number = Int32(token) { return .enumeration(number) }
            guard let value = field.typeName.flatMap(pool.enumType(named:))?.value(named: token) else {
                throw .malformedText("\"\(token)\" is not a value of \(field.typeName ?? "the enum")")
            }
            return .enumeration(value.number)
        }
        if field.kind == .bool {
            switch token {
            case "true", "True", "t", "1": return .bool(true)
            case "false", "False", "f", "0": return .bool(false)
            default: throw .malformedText("\"\(token)\" is not a bool")
            }
        }
        if field.kind == .float || field.kind == .double {
            let lowered = token.lowercased()
            let special: Double? = ["inf": .infinity, "infinity": .infinity, "-inf": -.infinity, "-infinity": -.infinity, "nan": .nan][lowered]
            var text = token
            if text.hasSuffix("f") || text.hasSuffix("F") { text.removeLast() }
            guard let value = special ?? Double(text) else { throw .malformedText("\"\(token)\" is not a number") }
            return field.kind == .float ? .float(Float(value)) : .double(value)
        }
        do {
            return try JSONMapping.decodeScalar(.number(token), kind: field.kind, path: field.name)
        } catch {
            throw .malformedText("\(error)")
        }
    }

    private mutating func quoted() throws(AdminError) -> [UInt8] {
        let quote = scalars[position]
        position += 1
        var out: [UInt8] = []
        while true {
            guard position < scalars.count else { throw .malformedText("unterminated string") }
            let c = scalars[position]
            position += 1
            if c == quote { return out }
            if c != "\\" {
                out += Array(String(c).utf8)
                continue
            }
            guard position < scalars.count else { throw .malformedText("unterminated string") }
            let e = scalars[position]
            position += 1
            switch e {
            case "n": out.append(10)
            case "r": out.append(13)
            case "t": out.append(9)
            case "\"", "'", "\\": out.append(UInt8(e.value))
            case "0"..."7":
                var value = e.value - 48
                for _ in 0..<2 where position < scalars.count && ("0"..."7").contains(scalars[position]) {
                    value = value * 8 + scalars[position].value - 48
                    position += 1
                }
                out.append(UInt8(truncatingIfNeeded: value))
            case "x":
                var value: UInt32 = 0
                var digits = 0
                while digits < 2, position < scalars.count, let d = Int(String(scalars[position]), radix: 16) {
                    value = value * 16 + UInt32(d)
                    position += 1
                    digits += 1
                }
                guard digits > 0 else { throw .malformedText("invalid \\x escape") }
                out.append(UInt8(value))
            default:
                throw .malformedText("invalid escape \\\(e)")
            }
        }
    }
}
