/// A parsed SQL92 filter (RocketMQ's property filter): a condition over a message's properties.
///
/// Evaluated with SQL's three-valued logic: a comparison that involves a missing property, or
/// values that cannot be compared (a property that is not a number against a number), is
/// *unknown*, and a message matches only when the whole condition is true. So `NOT (a > 1)`
/// does not match a message without `a`, as in RocketMQ.
///
/// Property values are strings on the wire: compared with a number, or ordered (`<`, `>`, …),
/// they are read as decimal numbers (`a > 5` matches `a = "10"`); compared with `TRUE` or
/// `FALSE`, a value is true when it spells `true` in any case and false otherwise (as Java's
/// `Boolean.valueOf`, which RocketMQ uses).
indirect enum SQLExpression: Sendable, Equatable {
    case constant(SQLValue)
    case property(String)
    case not(SQLExpression)
    /// All of the operands (a chain `a AND b AND c` is one node, so evaluating a long chain
    /// does not recurse once per operand).
    case and([SQLExpression])
    /// Any of the operands.
    case or([SQLExpression])
    case compare(SQLExpression, Comparison, SQLExpression)
    case between(SQLExpression, SQLExpression, SQLExpression, negated: Bool)
    case inList(SQLExpression, [String], negated: Bool)
    case isNull(SQLExpression, negated: Bool)
    case text(SQLExpression, TextTest, SQLExpression, negated: Bool)

    enum Comparison: String, Sendable {
        case equal = "=", notEqual = "<>", less = "<", lessOrEqual = "<=", greater = ">", greaterOrEqual = ">="
    }

    /// RocketMQ's string predicates: `a CONTAINS 'x'`, `a STARTSWITH 'x'`, `a ENDSWITH 'x'`.
    enum TextTest: String, Sendable {
        case contains = "CONTAINS", startsWith = "STARTSWITH", endsWith = "ENDSWITH"
    }

    /// Whether the condition holds for a message with `properties` (unknown counts as no).
    func matches(_ properties: [String: String]) -> Bool {
        truth(in: properties) == true
    }

    /// The condition's truth: `nil` is SQL's unknown.
    func truth(in properties: [String: String]) -> Bool? {
        switch self {
        case .constant, .property:
            return value(in: properties).asBoolean
        case .not(let inner):
            return inner.truth(in: properties).map { !$0 }
        case .and(let operands):
            return Self.combine(operands.lazy.map { $0.truth(in: properties) }, decidedBy: false)
        case .or(let operands):
            return Self.combine(operands.lazy.map { $0.truth(in: properties) }, decidedBy: true)
        case .compare(let left, let op, let right):
            return SQLValue.compare(left.value(in: properties), op, right.value(in: properties))
        case .between(let subject, let low, let high, let negated):
            // `low <= value AND value <= high`, with AND's three-valued logic: one side false
            // makes it false even when the other is unknown.
            let value = subject.value(in: properties)
            let within = Self.combine([
                SQLValue.compare(value, .greaterOrEqual, low.value(in: properties)),
                SQLValue.compare(value, .lessOrEqual, high.value(in: properties)),
            ], decidedBy: false)
            return within.map { $0 != negated }
        case .inList(let subject, let list, let negated):
            guard case .string(let text) = subject.value(in: properties) else { return nil }
            return list.contains(text) != negated
        case .isNull(let subject, let negated):
            return (subject.value(in: properties) == .null) != negated
        case .text(let subject, let test, let operand, let negated):
            guard case .string(let text) = subject.value(in: properties),
                  case .string(let part) = operand.value(in: properties)
            else { return nil }
            // Nothing is found in, begins or ends a string by the empty string (RocketMQ).
            guard !part.isEmpty else { return negated }
            let holds = switch test {
            case .contains: text.contains(part)
            case .startsWith: text.hasPrefix(part)
            case .endsWith: text.hasSuffix(part)
            }
            return holds != negated
        }
    }

    /// SQL's AND (`decidedBy: false`) or OR (`decidedBy: true`) of `truths`: the deciding value
    /// wins over unknown, which wins over the other. Stops at the first deciding value, so a
    /// lazy sequence evaluates no further operands.
    private static func combine(_ truths: some Sequence<Bool?>, decidedBy decisive: Bool) -> Bool? {
        var unknown = false
        for truth in truths {
            if truth == decisive { return decisive }
            if truth == nil { unknown = true }
        }
        return unknown ? nil : !decisive
    }

    /// The value of an operand: a constant, or a property (`.null` when the message lacks it).
    /// A condition used as an operand yields its truth.
    func value(in properties: [String: String]) -> SQLValue {
        switch self {
        case .constant(let value): return value
        case .property(let name): return properties[name].map(SQLValue.string) ?? .null
        default: return truth(in: properties).map(SQLValue.boolean) ?? .null
        }
    }
}

/// A value in a SQL92 filter.
enum SQLValue: Sendable, Equatable {
    case integer(Int64)
    case decimal(Double)
    case string(String)
    case boolean(Bool)
    case null

    /// As a condition: a boolean, or a string spelling one (a property holding `true`).
    var asBoolean: Bool? {
        switch self {
        case .boolean(let b): return b
        case .string(let s):
            switch s.lowercased() {
            case "true": return true
            case "false": return false
            default: return nil
            }
        default: return nil
        }
    }

    /// A number, or a string that reads as a decimal one (`12`, `-3.5`, `1e3`; not hex, not
    /// `inf`).
    private var asNumber: SQLValue? {
        switch self {
        case .integer, .decimal: return self
        case .string(let s):
            let text = s.trimmingWhitespace
            guard Self.isDecimalNumber(text) else { return nil }
            if let i = Int64(text) { return .integer(i) }
            if let d = Double(text), d.isFinite { return .decimal(d) }
            return nil
        default: return nil
        }
    }

    /// `[+-]digits[.digits][(e|E)[+-]digits]`, or with the digits before the point left out.
    private static func isDecimalNumber(_ text: String) -> Bool {
        var bytes = text.utf8[...]
        func digits() -> Int {
            var n = 0
            while let b = bytes.first, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) { bytes.removeFirst(); n += 1 }
            return n
        }
        if let b = bytes.first, b == UInt8(ascii: "+") || b == UInt8(ascii: "-") { bytes.removeFirst() }
        var mantissa = digits()
        if bytes.first == UInt8(ascii: ".") {
            bytes.removeFirst()
            mantissa += digits()
        }
        guard mantissa > 0 else { return false }
        if let b = bytes.first, b == UInt8(ascii: "e") || b == UInt8(ascii: "E") {
            bytes.removeFirst()
            if let b = bytes.first, b == UInt8(ascii: "+") || b == UInt8(ascii: "-") { bytes.removeFirst() }
            guard digits() > 0 else { return false }
        }
        return bytes.isEmpty
    }

    private var isNumber: Bool {
        switch self {
        case .integer, .decimal: return true
        default: return false
        }
    }

    /// `left op right`, or `nil` (unknown) when either is null or they cannot be compared.
    /// Ordering (`<`, `<=`, `>`, `>=`) and any comparison with a number compare numbers, a
    /// string side read as one (two properties too: `a > b`); otherwise booleans compare as
    /// booleans and strings as strings, by `=` and `<>`.
    static func compare(_ left: SQLValue, _ op: SQLExpression.Comparison, _ right: SQLValue) -> Bool? {
        if left == .null || right == .null { return nil }
        let ordering = op != .equal && op != .notEqual
        if ordering || left.isNumber || right.isNumber {
            guard let l = left.asNumber, let r = right.asNumber else { return nil }
            let order: Int
            switch (l, r) {
            case (.integer(let a), .integer(let b)): order = a < b ? -1 : (a == b ? 0 : 1)
            default:
                guard let a = l.double, let b = r.double else { return nil }
                order = a < b ? -1 : (a == b ? 0 : 1)
            }
            return switch op {
            case .equal: order == 0
            case .notEqual: order != 0
            case .less: order < 0
            case .lessOrEqual: order <= 0
            case .greater: order > 0
            case .greaterOrEqual: order >= 0
            }
        }
        let equal: Bool
        switch (left, right) {
        case (.string(let a), .string(let b)): equal = a == b
        case (.boolean(let a), .boolean(let b)): equal = a == b
        case (.boolean(let a), .string(let b)), (.string(let b), .boolean(let a)): equal = a == (b.lowercased() == "true")
        default: return nil
        }
        return op == .equal ? equal : !equal
    }

    private var double: Double? {
        switch self {
        case .integer(let i): return Double(i)
        case .decimal(let d): return d
        default: return nil
        }
    }
}
