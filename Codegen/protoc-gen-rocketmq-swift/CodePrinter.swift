/// Accumulates indented Swift source.
struct CodePrinter {
    private(set) var output = ""
    private var indentation = ""

    /// Prints `text` at the current indentation; each line of a multi-line text is indented.
    mutating func line(_ text: String = "") {
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            output += line.isEmpty ? "\n" : indentation + line + "\n"
        }
    }

    /// Prints `opening {`, the body one level deeper, then `}`.
    mutating func block(_ opening: String, closing: String = "}", _ body: (inout CodePrinter) throws -> Void) rethrows {
        line(opening + " {")
        indentation += "    "
        try body(&self)
        indentation.removeLast(4)
        line(closing)
    }

    /// A `.proto` comment as `///` doc lines; nothing when the comment is empty.
    mutating func doc(_ comment: String) {
        var lines = comment.split(separator: "\n", omittingEmptySubsequences: false).map {
            String($0).replacingTrailingWhitespace()
        }
        while lines.last?.isEmpty == true { lines.removeLast() }
        while lines.first?.isEmpty == true { lines.removeFirst() }
        for text in lines {
            line(text.isEmpty ? "///" : "///" + (text.hasPrefix(" ") ? text : " " + text))
        }
    }
}

extension String {
    func replacingTrailingWhitespace() -> String {
        var result = self
        while let last = result.last, last == " " || last == "\t" || last == "\r" { result.removeLast() }
        return result
    }

    /// A Swift string literal body: backslashes, quotes and control characters escaped.
    var swiftLiteralEscaped: String {
        var result = ""
        for scalar in unicodeScalars {
            switch scalar {
            case "\\": result += "\\\\"
            case "\"": result += "\\\""
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }
}
