/// Parses JSON text into ``JSONValue``s: one document, or a stream of concatenated documents
/// (what grpcurl reads from `-d @` for streaming calls).
///
/// Strict RFC 8259 (no comments, no trailing commas); errors say what was expected and at which
/// line and column. Nesting is limited to 100 levels so hostile input cannot exhaust the stack.
public struct JSONParser {
    private let scalars: [Unicode.Scalar]
    private var position = 0
    private static let maxDepth = 100

    /// A parser over `text`; call ``next()`` for each document.
    public init(_ text: String) {
        self.scalars = Array(text.unicodeScalars)
    }

    /// Parses exactly one JSON document.
    /// - Throws: ``AdminError/malformedJSON(_:)``.
    public static func parse(_ text: String) throws(AdminError) -> JSONValue {
        var parser = JSONParser(text)
        guard let value = try parser.next() else { throw .malformedJSON("empty input") }
        parser.skipWhitespace()
        guard parser.position == parser.scalars.count else {
            throw .malformedJSON("unexpected \(parser.describeCurrent()) after the JSON value at \(parser.location)")
        }
        return value
    }

    /// The next document of a stream, or `nil` at the end of the input.
    public mutating func next() throws(AdminError) -> JSONValue? {
        skipWhitespace()
        guard position < scalars.count else { return nil }
        return try value(depth: 0)
    }

    private var location: String {
        var line = 1
        var column = 1
        for scalar in scalars[..<min(position, scalars.count)] {
            if scalar == "\n" { line += 1; column = 1 } else { column += 1 }
        }
        return "line \(line), column \(column)"
    }

    private func describeCurrent() -> String {
        position < scalars.count ? "'\(scalars[position])'" : "end of input"
    }

    private mutating func skipWhitespace() {
        while position < scalars.count, [" ", "\n", "\r", "\t"].contains(scalars[position]) { position += 1 }
    }

    private mutating func expect(_ scalar: Unicode.Scalar) throws(AdminError) {
        skipWhitespace()
        guard position < scalars.count, scalars[position] == scalar else {
            throw .malformedJSON("expected '\(scalar)' but found \(describeCurrent()) at \(location)")
        }
        position += 1
    }

    private mutating func value(depth: Int) throws(AdminError) -> JSONValue {
        guard depth < Self.maxDepth else { throw .malformedJSON("nesting deeper than \(Self.maxDepth) levels at \(location)") }
        skipWhitespace()
        guard position < scalars.count else { throw .malformedJSON("unexpected end of input") }
        switch scalars[position] {
        case "{":
            position += 1
            var members: [(String, JSONValue)] = []
            skipWhitespace()
            if position < scalars.count, scalars[position] == "}" { position += 1; return .object([]) }
            while true {
                skipWhitespace()
                guard position < scalars.count, scalars[position] == "\"" else {
                    throw .malformedJSON("expected a member name in quotes but found \(describeCurrent()) at \(location)")
                }
                let key = try string()
                try expect(":")
                members.append((key, try value(depth: depth + 1)))
                skipWhitespace()
                guard position < scalars.count else { throw .malformedJSON("unterminated object") }
                if scalars[position] == "," { position += 1; continue }
                if scalars[position] == "}" { position += 1; return .object(members) }
                throw .malformedJSON("expected ',' or '}' but found \(describeCurrent()) at \(location)")
            }
        case "[":
            position += 1
            var elements: [JSONValue] = []
            skipWhitespace()
            if position < scalars.count, scalars[position] == "]" { position += 1; return .array([]) }
            while true {
                elements.append(try value(depth: depth + 1))
                skipWhitespace()
                guard position < scalars.count else { throw .malformedJSON("unterminated array") }
                if scalars[position] == "," { position += 1; continue }
                if scalars[position] == "]" { position += 1; return .array(elements) }
                throw .malformedJSON("expected ',' or ']' but found \(describeCurrent()) at \(location)")
            }
        case "\"":
            return .string(try string())
        case "t": try literal("true"); return .bool(true)
        case "f": try literal("false"); return .bool(false)
        case "n": try literal("null"); return .null
        case "-", "0"..."9":
            return .number(try number())
        default:
            throw .malformedJSON("unexpected \(describeCurrent()) at \(location)")
        }
    }

    private mutating func literal(_ word: String) throws(AdminError) {
        let wordScalars = Array(word.unicodeScalars)
        guard position + wordScalars.count <= scalars.count, Array(scalars[position..<position + wordScalars.count]) == wordScalars else {
            throw .malformedJSON("invalid literal at \(location) (expected \(word))")
        }
        position += wordScalars.count
    }

    private mutating func number() throws(AdminError) -> String {
        let start = position
        func digits() -> Int {
            let from = position
            while position < scalars.count, ("0"..."9").contains(scalars[position]) { position += 1 }
            return position - from
        }
        if scalars[position] == "-" { position += 1 }
        guard digits() > 0 else { throw .malformedJSON("invalid number at \(location)") }
        if position < scalars.count, scalars[position] == "." {
            position += 1
            guard digits() > 0 else { throw .malformedJSON("invalid number at \(location)") }
        }
        if position < scalars.count, scalars[position] == "e" || scalars[position] == "E" {
            position += 1
            if position < scalars.count, scalars[position] == "+" || scalars[position] == "-" { position += 1 }
            guard digits() > 0 else { throw .malformedJSON("invalid number at \(location)") }
        }
        var text = ""
        text.unicodeScalars.append(contentsOf: scalars[start..<position])
        return text
    }

    private mutating func string() throws(AdminError) -> String {
        position += 1  // opening quote
        var out = String.UnicodeScalarView()
        while true {
            guard position < scalars.count else { throw .malformedJSON("unterminated string") }
            let scalar = scalars[position]
            position += 1
            switch scalar {
            case "\"":
                return String(out)
            case "\\":
                guard position < scalars.count else { throw .malformedJSON("unterminated string") }
                let escape = scalars[position]
                position += 1
                switch escape {
                case "\"": out.append("\"")
                case "\\": out.append("\\")
                case "/": out.append("/")
                case "b": out.append("\u{08}")
                case "f": out.append("\u{0C}")
                case "n": out.append("\n")
                case "r": out.append("\r")
                case "t": out.append("\t")
                case "u":
                    var code = try hex4()
                    if (0xD800..<0xDC00).contains(code) {
                        guard position + 1 < scalars.count, scalars[position] == "\\", scalars[position + 1] == "u" else {
                            throw .malformedJSON("unpaired surrogate in string at \(location)")
                        }
                        position += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw .malformedJSON("invalid surrogate pair at \(location)") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let decoded = Unicode.Scalar(code) else { throw .malformedJSON("invalid \\u escape at \(location)") }
                    out.append(decoded)
                default:
                    throw .malformedJSON("invalid escape '\\\(escape)' at \(location)")
                }
            default:
                guard scalar.value >= 0x20 else { throw .malformedJSON("control character in string at \(location)") }
                out.append(scalar)
            }
        }
    }

    private mutating func hex4() throws(AdminError) -> UInt32 {
        guard position + 4 <= scalars.count else { throw .malformedJSON("truncated \\u escape") }
        var text = ""
        text.unicodeScalars.append(contentsOf: scalars[position..<position + 4])
        guard let value = UInt32(text, radix: 16) else { throw .malformedJSON("invalid \\u escape at \(location)") }
        position += 4
        return value
    }
}
