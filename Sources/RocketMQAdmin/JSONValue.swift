/// A parsed JSON value. Numbers keep their source text so 64-bit integers never pass through `Double`.
public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// The number exactly as written (or as it will be written).
    case number(String)
    case string(String)
    case array([JSONValue])
    /// Members in source order (duplicate names are kept; the mapping rejects them).
    case object([(String, JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): true
        case (.bool(let x), .bool(let y)): x == y
        case (.number(let x), .number(let y)): x == y
        case (.string(let x), .string(let y)): x == y
        case (.array(let x), .array(let y)): x == y
        case (.object(let x), .object(let y)): x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: false
        }
    }

    /// The JSON type's name, for error messages.
    var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    // MARK: Writing

    /// The value as JSON text; `indent` > 0 pretty-prints as grpcurl does (`"key": value`, two spaces).
    public func serialized(indent: Int = 2) -> String {
        var out = ""
        write(into: &out, indent: indent, level: 0)
        return out
    }

    private func write(into out: inout String, indent: Int, level: Int) {
        let pretty = indent > 0
        let newline = pretty ? "\n" : ""
        let pad = { (n: Int) in String(repeating: " ", count: pretty ? n * indent : 0) }
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let n): out += n
        case .string(let s): Self.writeString(s, into: &out)
        case .array(let elements):
            if elements.isEmpty { out += "[]"; return }
            out += "[" + newline
            for (i, element) in elements.enumerated() {
                out += pad(level + 1)
                element.write(into: &out, indent: indent, level: level + 1)
                out += (i < elements.count - 1 ? "," : "") + newline
            }
            out += pad(level) + "]"
        case .object(let members):
            if members.isEmpty { out += "{}"; return }
            out += "{" + newline
            for (i, (key, value)) in members.enumerated() {
                out += pad(level + 1)
                Self.writeString(key, into: &out)
                out += pretty ? ": " : ":"
                value.write(into: &out, indent: indent, level: level + 1)
                out += (i < members.count - 1 ? "," : "") + newline
            }
            out += pad(level) + "}"
        }
    }

    static func writeString(_ s: String, into out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if scalar.value < 0x20 { out += "\\u" + hex4(scalar.value) } else { out.unicodeScalars.append(scalar) }
            }
        }
        out += "\""
    }

    private static func hex4(_ v: UInt32) -> String {
        let digits = String(v, radix: 16)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}

extension JSONValue {
    /// The message names of every `"@type"` member (`type.googleapis.com/pkg.Msg` → `pkg.Msg`), so a
    /// caller can load `Any` payload types before parsing.
    public var anyTypeNames: [String] {
        switch self {
        case .object(let members):
            var names: [String] = []
            for (key, value) in members {
                if key == "@type", case .string(let url) = value, let name = url.split(separator: "/").last {
                    names.append(String(name))
                }
                names += value.anyTypeNames
            }
            return names
        case .array(let elements):
            return elements.flatMap(\.anyTypeNames)
        default:
            return []
        }
    }
}
