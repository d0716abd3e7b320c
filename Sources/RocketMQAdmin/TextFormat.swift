/// Protobuf text format output (`name: value`, nested messages in braces), for `-format text`.
///
/// The simple, readable subset: field names as in `.proto`, enums by name, strings and bytes
/// C-escaped, maps as repeated `{ key: … value: … }` entries. Unknown fields are left out.
public struct TextFormat: Sendable {
    /// Resolves enum names.
    public let pool: DescriptorPool

    /// A printer for messages whose types are in `pool`.
    public init(pool: DescriptorPool) { self.pool = pool }

    /// The message in text format, one field per line.
    public func string(from message: DynamicMessage) -> String {
        var lines: [String] = []
        write(message, indent: "", into: &lines)
        return lines.joined(separator: "\n")
    }

    private func write(_ message: DynamicMessage, indent: String, into lines: inout [String]) {
        for (field, value) in message.setFields {
            switch value {
            case .list(let elements):
                for element in elements { writeField(field, element, indent: indent, into: &lines) }
            case .map(let entries):
                guard let entry = field.mapEntry else { continue }
                for pair in entries {
                    lines.append("\(indent)\(field.name) {")
                    writeField(entry.key.field, pair.key, indent: indent + "  ", into: &lines)
                    writeField(entry.value.field, pair.value, indent: indent + "  ", into: &lines)
                    lines.append("\(indent)}")
                }
            default:
                writeField(field, value, indent: indent, into: &lines)
            }
        }
    }

    private func writeField(_ field: FieldDescriptor, _ value: FieldValue, indent: String, into lines: inout [String]) {
        switch value {
        case .message(let nested):
            lines.append("\(indent)\(field.name) {")
            write(nested, indent: indent + "  ", into: &lines)
            lines.append("\(indent)}")
        case .enumeration(let number):
            let name = field.typeName.flatMap(pool.enumType(named:))?.value(number: number)?.name
            lines.append("\(indent)\(field.name): \(name ?? String(number))")
        case .string(let s):
            lines.append("\(indent)\(field.name): \(Self.quote(Array(s.utf8)))")
        case .bytes(let b):
            lines.append("\(indent)\(field.name): \(Self.quote(b))")
        case .float(let f):
            lines.append("\(indent)\(field.name): \(f.isNaN ? "nan" : f.isInfinite ? (f < 0 ? "-inf" : "inf") : f.description)")
        case .double(let d):
            lines.append("\(indent)\(field.name): \(d.isNaN ? "nan" : d.isInfinite ? (d < 0 ? "-inf" : "inf") : d.description)")
        case .int32(let v): lines.append("\(indent)\(field.name): \(v)")
        case .int64(let v): lines.append("\(indent)\(field.name): \(v)")
        case .uint32(let v): lines.append("\(indent)\(field.name): \(v)")
        case .uint64(let v): lines.append("\(indent)\(field.name): \(v)")
        case .bool(let v): lines.append("\(indent)\(field.name): \(v)")
        case .list, .map: break
        }
    }

    static func quote(_ bytes: [UInt8]) -> String {
        var out = "\""
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "\""): out += "\\\""
            case UInt8(ascii: "\\"): out += "\\\\"
            case UInt8(ascii: "\n"): out += "\\n"
            case UInt8(ascii: "\r"): out += "\\r"
            case UInt8(ascii: "\t"): out += "\\t"
            case 0x20..<0x7f: out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let octal = String(byte, radix: 8)
                out += "\\" + String(repeating: "0", count: 3 - octal.count) + octal
            }
        }
        return out + "\""
    }
}
