/// Parses RocketMQ's SQL92 filter language into an ``SQLExpression``.
///
/// The language, as RocketMQ documents it:
/// - comparisons `=`, `<>`, `<`, `<=`, `>`, `>=`; `[NOT] BETWEEN x AND y`; `[NOT] IN ('a', 'b')`;
///   `IS [NOT] NULL`; `[NOT] CONTAINS | STARTSWITH | ENDSWITH 'text'`;
/// - `AND`, `OR`, `NOT` and parentheses (`NOT` binds tightest, then `AND`, then `OR`);
/// - constants: integers (`123`, `-5`, `10L`), decimals (`3.14`, `1e3`), strings in single
///   quotes (`'it''s'`), `TRUE`, `FALSE`, `NULL`; keywords in any case;
/// - property names: a letter, `_` or `$`, then letters, digits, `_`, `$` or `.`.
///
/// Input is bounded (``maxLength`` characters, ``maxDepth`` levels of nesting), so a hostile
/// subscription can neither exhaust the stack nor take long to parse.
struct SQLParser {
    static let maxLength = 4096
    static let maxDepth = 64

    /// Why an expression was refused, and where (a character offset from 0).
    struct Failure: Error, Equatable {
        var reason: String
        var position: Int
    }

    private var tokens: [Token]
    private var index = 0
    private var depth = 0

    static func parse(_ text: String) throws(Failure) -> SQLExpression {
        guard text.count <= maxLength else { throw Failure(reason: "longer than \(maxLength) characters", position: maxLength) }
        var parser = SQLParser(tokens: try Lexer.tokens(of: text))
        guard parser.peek.kind != .end else { throw Failure(reason: "empty expression", position: 0) }
        let expression = try parser.orExpression()
        guard parser.peek.kind == .end else { throw parser.unexpected("AND, OR or the end") }
        guard expression.isCondition else {
            throw Failure(reason: "not a condition (a comparison, IS NULL, IN, BETWEEN, TRUE or FALSE)", position: 0)
        }
        return expression
    }

    private init(tokens: [Token]) { self.tokens = tokens }

    // MARK: Grammar

    private mutating func orExpression() throws(Failure) -> SQLExpression {
        var operands = [try andExpression()]
        while take(.keyword("OR")) { operands.append(try andExpression()) }
        return operands.count == 1 ? operands[0] : .or(operands)
    }

    private mutating func andExpression() throws(Failure) -> SQLExpression {
        var operands = [try notExpression()]
        while take(.keyword("AND")) { operands.append(try notExpression()) }
        return operands.count == 1 ? operands[0] : .and(operands)
    }

    private mutating func notExpression() throws(Failure) -> SQLExpression {
        guard take(.keyword("NOT")) else { return try predicate() }
        try enter()
        defer { depth -= 1 }
        return .not(try notExpression())
    }

    private mutating func predicate() throws(Failure) -> SQLExpression {
        let subject = try operand()
        if case .comparison(let op) = peek.kind {
            index += 1
            return .compare(subject, op, try operand())
        }
        if take(.keyword("IS")) {
            let negated = take(.keyword("NOT"))
            guard take(.keyword("NULL")) else { throw unexpected("NULL") }
            return .isNull(subject, negated: negated)
        }
        let negated = take(.keyword("NOT"))
        if take(.keyword("BETWEEN")) {
            let low = try operand()
            guard take(.keyword("AND")) else { throw unexpected("AND") }
            return .between(subject, low, try operand(), negated: negated)
        }
        if take(.keyword("IN")) {
            guard take(.open) else { throw unexpected("(") }
            var list: [String] = []
            repeat {
                guard case .constant(.string(let text)) = peek.kind else { throw unexpected("a string in quotes") }
                index += 1
                list.append(text)
            } while take(.comma)
            guard take(.close) else { throw unexpected(", or )") }
            return .inList(subject, list, negated: negated)
        }
        for test in [SQLExpression.TextTest.contains, .startsWith, .endsWith] where take(.keyword(test.rawValue)) {
            return .text(subject, test, try operand(), negated: negated)
        }
        if negated { throw unexpected("BETWEEN, IN, CONTAINS, STARTSWITH or ENDSWITH after NOT") }
        return subject
    }

    private mutating func operand() throws(Failure) -> SQLExpression {
        let token = peek
        index += 1
        switch token.kind {
        case .open:
            try enter()
            defer { depth -= 1 }
            let inner = try orExpression()
            guard take(.close) else { throw unexpected(")") }
            return inner
        case .constant(let value):
            return .constant(value)
        case .identifier(let name):
            return .property(name)
        case .keyword("NULL"):
            return .constant(.null)
        case .sign(let negative):
            switch peek.kind {
            case .constant(.integer(let i)):
                index += 1
                return .constant(.integer(negative ? -i : i))
            case .constant(.decimal(let d)):
                index += 1
                return .constant(.decimal(negative ? -d : d))
            default:
                throw unexpected("a number after the sign")
            }
        default:
            index -= 1
            throw unexpected("a property, a constant or (")
        }
    }

    // MARK: Helpers

    private var peek: Token { tokens[index] }

    private mutating func take(_ kind: Token.Kind) -> Bool {
        guard peek.kind == kind else { return false }
        index += 1
        return true
    }

    private mutating func enter() throws(Failure) {
        depth += 1
        if depth > Self.maxDepth { throw Failure(reason: "nested more than \(Self.maxDepth) levels deep", position: peek.position) }
    }

    private func unexpected(_ expected: String) -> Failure {
        let found = peek.kind == .end ? "the end" : "\"\(peek.text)\""
        return Failure(reason: "expected \(expected), found \(found)", position: peek.position)
    }
}

extension SQLExpression {
    /// Whether the expression can stand as a whole filter: a bare number or string cannot.
    var isCondition: Bool {
        switch self {
        case .constant(let value): return value.asBoolean != nil
        case .property, .not, .and, .or, .compare, .between, .inList, .isNull, .text: return true
        }
    }
}

// MARK: - Lexer

private struct Token {
    enum Kind: Equatable {
        case keyword(String)  // upper-cased
        case identifier(String)
        case constant(SQLValue)
        case comparison(SQLExpression.Comparison)
        case sign(negative: Bool)
        case open, close, comma, end
    }

    var kind: Kind
    var position: Int
    var text: String
}

private enum Lexer {
    static let keywords: Set<String> = [
        "AND", "OR", "NOT", "BETWEEN", "IN", "IS", "NULL", "TRUE", "FALSE", "CONTAINS", "STARTSWITH", "ENDSWITH",
    ]

    static func tokens(of text: String) throws(SQLParser.Failure) -> [Token] {
        let chars = Array(text)
        var tokens: [Token] = []
        var i = 0
        func add(_ kind: Token.Kind, from start: Int) { tokens.append(Token(kind: kind, position: start, text: String(chars[start..<i]))) }
        while i < chars.count {
            let c = chars[i]
            let start = i
            if c.isWhitespace {
                i += 1
                continue
            }
            switch c {
            case "(": i += 1; add(.open, from: start)
            case ")": i += 1; add(.close, from: start)
            case ",": i += 1; add(.comma, from: start)
            case "+", "-": i += 1; add(.sign(negative: c == "-"), from: start)
            case "=": i += 1; add(.comparison(.equal), from: start)
            case "<":
                i += 1
                if i < chars.count, chars[i] == ">" { i += 1; add(.comparison(.notEqual), from: start) }
                else if i < chars.count, chars[i] == "=" { i += 1; add(.comparison(.lessOrEqual), from: start) }
                else { add(.comparison(.less), from: start) }
            case ">":
                i += 1
                if i < chars.count, chars[i] == "=" { i += 1; add(.comparison(.greaterOrEqual), from: start) }
                else { add(.comparison(.greater), from: start) }
            case "'":
                i += 1
                var value = ""
                while true {
                    guard i < chars.count else { throw SQLParser.Failure(reason: "unterminated string", position: start) }
                    if chars[i] == "'" {
                        if i + 1 < chars.count, chars[i + 1] == "'" {
                            value.append("'")
                            i += 2
                            continue
                        }
                        i += 1
                        break
                    }
                    value.append(chars[i])
                    i += 1
                }
                add(.constant(.string(value)), from: start)
            case _ where c.isASCII && c.isNumber, ".":
                tokens.append(try number(chars, &i))
            case _ where c.isLetter || c == "_" || c == "$":
                while i < chars.count, chars[i].isLetter || chars[i].isNumber || chars[i] == "_" || chars[i] == "$" || chars[i] == "." { i += 1 }
                let word = String(chars[start..<i])
                let upper = word.uppercased()
                if upper == "TRUE" || upper == "FALSE" { add(.constant(.boolean(upper == "TRUE")), from: start) }
                else if upper == "NULL" { add(.keyword("NULL"), from: start) }
                else if keywords.contains(upper) { add(.keyword(upper), from: start) }
                else { add(.identifier(word), from: start) }
            default:
                throw SQLParser.Failure(reason: "unexpected character \"\(c)\"", position: start)
            }
        }
        tokens.append(Token(kind: .end, position: chars.count, text: ""))
        return tokens
    }

    /// `123`, `123L`, `1.5`, `.5`, `2e10`, `1.5E-3`.
    private static func number(_ chars: [Character], _ i: inout Int) throws(SQLParser.Failure) -> Token {
        let start = i
        func digits() { while i < chars.count, chars[i].isASCII, chars[i].isNumber { i += 1 } }
        digits()
        var isDecimal = false
        if i < chars.count, chars[i] == "." {
            isDecimal = true
            i += 1
            digits()
        }
        if i < chars.count, chars[i] == "e" || chars[i] == "E" {
            isDecimal = true
            i += 1
            if i < chars.count, chars[i] == "+" || chars[i] == "-" { i += 1 }
            let exponent = i
            digits()
            guard i > exponent else { throw SQLParser.Failure(reason: "a number's exponent has no digits", position: start) }
        }
        let literal = String(chars[start..<i])
        if !isDecimal, i < chars.count, chars[i] == "l" || chars[i] == "L" { i += 1 }
        if i < chars.count, chars[i].isLetter || chars[i] == "_" {
            throw SQLParser.Failure(reason: "malformed number \"\(String(chars[start...i]))\"", position: start)
        }
        let text = String(chars[start..<i])
        if !isDecimal, let value = Int64(literal) { return Token(kind: .constant(.integer(value)), position: start, text: text) }
        guard let value = Double(literal), value.isFinite else {
            throw SQLParser.Failure(reason: "malformed number \"\(text)\"", position: start)
        }
        return Token(kind: .constant(.decimal(value)), position: start, text: text)
    }
}
