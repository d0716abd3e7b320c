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
/// A condition that could never be true is refused, as RocketMQ refuses it, rather than
/// accepted and then matching nothing (every message would be done for the group unseen):
/// ordering against a string or boolean (`a > '100'`), `= NULL`, a constant or a bare property
/// as a condition, `BETWEEN` bounds in the wrong order.
///
/// Input is bounded (``maxLength`` bytes of UTF-8, ``maxDepth`` levels of nesting), so a hostile
/// subscription can neither exhaust the stack nor take long to parse. Positions count Unicode
/// scalars from 0.
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
        guard text.utf8.count <= maxLength else { throw Failure(reason: "longer than \(maxLength) bytes", position: 0) }
        var parser = SQLParser(tokens: try Lexer.tokens(of: text))
        guard parser.peek.kind != .end else { throw Failure(reason: "empty expression", position: 0) }
        let expression = try parser.orExpression()
        guard parser.peek.kind == .end else { throw parser.unexpected("AND, OR or the end") }
        try expression.requireCondition(at: 0)
        return expression
    }

    private init(tokens: [Token]) { self.tokens = tokens }

    // MARK: Grammar

    private mutating func orExpression() throws(Failure) -> SQLExpression {
        try chain("OR", of: { (parser) throws(Failure) in try parser.andExpression() }, SQLExpression.or)
    }

    private mutating func andExpression() throws(Failure) -> SQLExpression {
        try chain("AND", of: { (parser) throws(Failure) in try parser.notExpression() }, SQLExpression.and)
    }

    /// `operand (keyword operand)*` as one flat node made by `node`; with more than one operand,
    /// each must be a condition (those after a keyword are checked as they are read).
    private mutating func chain(
        _ keyword: String, of operand: (inout SQLParser) throws(Failure) -> SQLExpression, _ node: ([SQLExpression]) -> SQLExpression
    ) throws(Failure) -> SQLExpression {
        let first = peek.position
        var operands = [try operand(&self)]
        while take(.keyword(keyword)) {
            let at = peek.position
            operands.append(try operand(&self))
            try operands[operands.count - 1].requireCondition(at: at)
        }
        guard operands.count > 1 else { return operands[0] }
        try operands[0].requireCondition(at: first)
        return node(operands)
    }

    private mutating func notExpression() throws(Failure) -> SQLExpression {
        guard take(.keyword("NOT")) else { return try predicate() }
        try enter()
        defer { depth -= 1 }
        let at = peek.position
        let operand = try notExpression()
        try operand.requireCondition(at: at)
        return .not(operand)
    }

    private mutating func predicate() throws(Failure) -> SQLExpression {
        let start = peek.position
        let subject = try operand()
        if case .comparison(let op) = peek.kind {
            let at = peek.position
            index += 1
            let other = try operand()
            for side in [subject, other] {
                if side == .constant(.null) {
                    throw Failure(reason: "\(op.rawValue) NULL is never true; use IS NULL or IS NOT NULL", position: at)
                }
                if op != .equal && op != .notEqual && !side.canBeNumber {
                    throw Failure(reason: "\(op.rawValue) compares numbers, not strings, booleans or conditions", position: at)
                }
            }
            return .compare(subject, op, other)
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
            let high = try operand()
            guard [subject, low, high].allSatisfy(\.canBeNumber) else {
                throw Failure(reason: "BETWEEN compares numbers, not strings, booleans or conditions", position: start)
            }
            if let l = low.numericConstant, let h = high.numericConstant, l > h {
                throw Failure(reason: "BETWEEN bounds are in the wrong order (the lower one first)", position: start)
            }
            return .between(subject, low, high, negated: negated)
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
            guard subject.canBeString else { throw Failure(reason: "IN takes a property", position: start) }
            return .inList(subject, list, negated: negated)
        }
        for test in [SQLExpression.TextTest.contains, .startsWith, .endsWith] where take(.keyword(test.rawValue)) {
            let at = peek.position
            let part = try operand()
            guard subject.canBeString, part.canBeString else {
                throw Failure(reason: "\(test.rawValue) takes strings", position: at)
            }
            return .text(subject, test, part, negated: negated)
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
    /// Throws unless the expression is a condition: a comparison or predicate, `TRUE`, `FALSE`,
    /// or a combination of them. A bare property is not (RocketMQ never matches it).
    func requireCondition(at position: Int) throws(SQLParser.Failure) {
        switch self {
        case .constant(.boolean), .not, .and, .or, .compare, .between, .inList, .isNull, .text: return
        case .property(let name):
            throw SQLParser.Failure(reason: "the property \(name) alone is not a condition; compare it (\(name) = TRUE)", position: position)
        case .constant:
            throw SQLParser.Failure(reason: "not a condition (a comparison, IS NULL, IN, BETWEEN, TRUE or FALSE)", position: position)
        }
    }

    /// Whether it may hold a number: a number constant or a property (read as one).
    var canBeNumber: Bool {
        switch self {
        case .property, .constant(.integer), .constant(.decimal): return true
        default: return false
        }
    }

    /// Whether it may hold a string: a string constant or a property.
    var canBeString: Bool {
        switch self {
        case .property, .constant(.string): return true
        default: return false
        }
    }

    /// The value of a number constant.
    var numericConstant: Double? {
        switch self {
        case .constant(.integer(let i)): return Double(i)
        case .constant(.decimal(let d)): return d
        default: return nil
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

    /// Works on Unicode scalars: a quote followed by a combining mark is still a quote.
    static func tokens(of text: String) throws(SQLParser.Failure) -> [Token] {
        let chars = Array(text.unicodeScalars)
        var tokens: [Token] = []
        var i = 0
        func add(_ kind: Token.Kind, from start: Int) { tokens.append(Token(kind: kind, position: start, text: string(chars[start..<i]))) }
        while i < chars.count {
            let c = chars[i]
            let start = i
            if c.properties.isWhitespace {
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
                var value = String.UnicodeScalarView()
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
                add(.constant(.string(String(value))), from: start)
            case "0"..."9", ".":
                tokens.append(try number(chars, &i))
            case _ where c.properties.isAlphabetic || c == "_" || c == "$":
                while i < chars.count, isIdentifierPart(chars[i]) { i += 1 }
                let word = string(chars[start..<i])
                // Keywords are ASCII: `ın` (dotless ı) upper-cases to `IN` but is a name.
                let upper = word.unicodeScalars.allSatisfy(\.isASCII) ? word.uppercased() : word
                if upper == "TRUE" || upper == "FALSE" { add(.constant(.boolean(upper == "TRUE")), from: start) }
                else if keywords.contains(upper) { add(.keyword(upper), from: start) }
                else { add(.identifier(word), from: start) }
            default:
                throw SQLParser.Failure(reason: "unexpected character \"\(c)\"", position: start)
            }
        }
        tokens.append(Token(kind: .end, position: chars.count, text: ""))
        return tokens
    }

    private static func isIdentifierPart(_ c: Unicode.Scalar) -> Bool {
        c.properties.isAlphabetic || ("0"..."9").contains(c) || c == "_" || c == "$" || c == "."
    }

    private static func string(_ scalars: ArraySlice<Unicode.Scalar>) -> String {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        return String(view)
    }

    /// `123`, `123L`, `1.5`, `.5`, `2e10`, `1.5E-3`.
    private static func number(_ chars: [Unicode.Scalar], _ i: inout Int) throws(SQLParser.Failure) -> Token {
        let start = i
        func digits() { while i < chars.count, ("0"..."9").contains(chars[i]) { i += 1 } }
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
        let literal = string(chars[start..<i])
        if !isDecimal, i < chars.count, chars[i] == "l" || chars[i] == "L" { i += 1 }
        if i < chars.count, isIdentifierPart(chars[i]) {
            throw SQLParser.Failure(reason: "malformed number \"\(string(chars[start...i]))\"", position: start)
        }
        let text = string(chars[start..<i])
        if !isDecimal, let value = Int64(literal) { return Token(kind: .constant(.integer(value)), position: start, text: text) }
        guard let value = Double(literal), value.isFinite else {
            throw SQLParser.Failure(reason: "malformed number \"\(text)\"", position: start)
        }
        return Token(kind: .constant(.decimal(value)), position: start, text: text)
    }
}
