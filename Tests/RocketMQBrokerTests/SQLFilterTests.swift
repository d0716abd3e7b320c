import RocketMQAPI
@testable import RocketMQBroker
import Testing

@Suite("SQL92 filters")
struct SQLFilterTests {
    private func matches(_ sql: String, _ properties: [String: String]) throws -> Bool {
        try SQLParser.parse(sql).matches(properties)
    }

    @Test("comparisons read string properties as numbers against numbers", arguments: [
        ("a > 5", ["a": "10"], true),
        ("a > 5", ["a": "5"], false),
        ("a >= 5", ["a": "5"], true),
        ("a < 5.5", ["a": "5"], true),
        ("a <= -1", ["a": "-1"], true),
        ("a = 10", ["a": "10"], true),
        ("a = 10", ["a": "10.0"], true),
        ("a <> 10", ["a": "11"], true),
        ("a = 1e3", ["a": "1000"], true),
        ("a > 100000000000", ["a": "100000000001"], true),
        ("a = 10L", ["a": "10"], true),
        ("a > 5", ["a": "ten"], false),  // not a number: unknown
        ("a = 16", ["a": "0x10"], false),  // decimal only
        ("a > 1", ["a": "inf"], false),
        ("a > b", ["a": "20", "b": "10"], true),  // two properties order as numbers
        ("a > b", ["a": "20", "b": "x"], false),
        ("a > 5", [:], false),  // missing: unknown
    ] as [(String, [String: String], Bool)])
    func numericComparisons(sql: String, properties: [String: String], expected: Bool) throws {
        #expect(try matches(sql, properties) == expected)
    }

    @Test("strings compare by = and <> only; IN, CONTAINS, STARTSWITH, ENDSWITH", arguments: [
        ("a = 'x'", ["a": "x"], true),
        ("a <> 'x'", ["a": "y"], true),
        ("a = 'it''s'", ["a": "it's"], true),
        ("a IN ('x', 'y')", ["a": "y"], true),
        ("a IN ('x', 'y')", ["a": "z"], false),
        ("a NOT IN ('x', 'y')", ["a": "z"], true),
        ("a NOT IN ('x')", [:], false),  // missing: unknown, not true
        ("a CONTAINS 'ell'", ["a": "hello"], true),
        ("a NOT CONTAINS 'ell'", ["a": "hello"], false),
        ("a STARTSWITH 'he'", ["a": "hello"], true),
        ("a ENDSWITH 'lo'", ["a": "hello"], true),
        ("a ENDSWITH 'he'", ["a": "hello"], false),
        ("TAGS = 'pay'", ["TAGS": "pay"], true),
        ("a CONTAINS ''", ["a": "x"], false),  // the empty string is found nowhere (RocketMQ)
        ("a STARTSWITH ''", ["a": "x"], false),
        ("a NOT ENDSWITH ''", ["a": "x"], true),
        ("ın = 'x'", ["ın": "x"], true),  // dotless ı: a name, not the keyword IN
        ("a = '\u{301}x'", ["a": "\u{301}x"], true),  // a quote before a combining mark still opens the string
    ] as [(String, [String: String], Bool)])
    func stringPredicates(sql: String, properties: [String: String], expected: Bool) throws {
        #expect(try matches(sql, properties) == expected)
    }

    @Test("BETWEEN, IS NULL, booleans and keywords in any case", arguments: [
        ("a BETWEEN 1 AND 3", ["a": "2"], true),
        ("a between 1 and 3", ["a": "3"], true),
        ("a BETWEEN 1 AND 3", ["a": "4"], false),
        ("a NOT BETWEEN 1 AND 3", ["a": "4"], true),
        ("a NOT BETWEEN 1 AND 3", [:], false),
        ("NOT (a BETWEEN 1 AND b)", ["a": "0"], true),  // 0 >= 1 is false: false AND unknown is false
        ("a BETWEEN 1 AND b", ["a": "2"], false),  // true AND unknown is unknown
        ("a IS NULL", [:], true),
        ("a IS NULL", ["a": ""], false),
        ("a is not null", ["a": "1"], true),
        ("flag = TRUE", ["flag": "TRUE"], true),
        ("flag = false", ["flag": "true"], false),
        ("flag = FALSE", ["flag": "no"], true),  // anything but "true" is false, as Java's Boolean.valueOf
        ("TRUE", [:], true),
        ("NOT FALSE", [:], true),
    ] as [(String, [String: String], Bool)])
    func betweenNullsAndBooleans(sql: String, properties: [String: String], expected: Bool) throws {
        #expect(try matches(sql, properties) == expected)
    }

    @Test("AND, OR and NOT follow SQL's three-valued logic and precedence", arguments: [
        ("a = 1 OR b = 2 AND c = 3", ["a": "1"], true),  // AND binds tighter than OR
        ("(a = 1 OR b = 2) AND c = 3", ["a": "1"], false),
        ("(a = 1 OR b = 2) AND c = 3", ["a": "1", "c": "3"], true),
        ("NOT a = 1", ["a": "2"], true),
        ("NOT a = 1", [:], false),  // NOT unknown is unknown
        ("NOT (a > 1 AND b > 1)", ["a": "0"], true),  // false AND unknown is false
        ("a > 1 OR b > 1", ["a": "2"], true),  // true OR unknown is true
        ("a > 1 OR b > 1", ["a": "0"], false),  // false OR unknown is unknown
        ("NOT NOT a = 1", ["a": "1"], true),
    ] as [(String, [String: String], Bool)])
    func logic(sql: String, properties: [String: String], expected: Bool) throws {
        #expect(try matches(sql, properties) == expected)
    }

    @Test("a malformed expression is refused with what was expected and where", arguments: [
        ("", "empty expression", 1),
        ("a >", "expected a property, a constant or (, found the end", 4),
        ("a = 'x", "unterminated string", 5),
        ("a IN (1, 2)", "expected a string in quotes, found \"1\"", 7),
        ("(a = 1", "expected ), found the end", 7),
        ("a = 1 b = 2", "expected AND, OR or the end, found \"b\"", 7),
        ("a BETWEEN 1 3", "expected AND, found \"3\"", 13),
        ("a NOT = 1", "expected BETWEEN, IN, CONTAINS, STARTSWITH or ENDSWITH after NOT, found \"=\"", 7),
        ("a # 1", "unexpected character \"#\"", 3),
        ("12", "not a condition", 1),
        ("'text'", "not a condition", 1),
        ("a = 12abc", "malformed number", 5),
        ("a IS 1", "expected NULL, found \"1\"", 6),
        // Conditions that could never be true are refused, not left to match nothing.
        ("a > '100'", "> compares numbers", 3),
        ("TRUE <= a", "<= compares numbers", 6),
        ("a = NULL", "= NULL is never true; use IS NULL", 3),
        ("flag", "the property flag alone is not a condition", 1),
        ("flag OR a = 1", "the property flag alone is not a condition", 1),
        ("12 AND a = 1", "not a condition", 1),
        ("a = 1 AND 'x'", "not a condition", 11),
        ("NOT 5", "not a condition", 5),
        ("a BETWEEN 5 AND 1", "BETWEEN bounds are in the wrong order", 1),
        ("a BETWEEN 'x' AND 'y'", "BETWEEN compares numbers", 1),
        ("a CONTAINS 5", "CONTAINS takes strings", 12),
        ("5 IN ('a')", "IN takes a property", 1),
    ] as [(String, String, Int)])
    func malformed(sql: String, reason: String, character: Int) {
        #expect {
            _ = try MessageFilter(.init(type: .sql, expression: sql))
        } throws: { error in
            guard case BrokerError.illegalFilter(let why) = error else { return false }
            return why.contains(reason) && why.hasSuffix("at character \(character)")
        }
    }

    @Test("hostile input is bounded: deep nesting and huge expressions are refused, not recursed into")
    func bounded() throws {
        let deep = String(repeating: "(", count: 100) + "a = 1" + String(repeating: ")", count: 100)
        #expect(throws: SQLParser.Failure(reason: "nested more than 64 levels deep", position: 65)) { try SQLParser.parse(deep) }
        let nots = String(repeating: "NOT ", count: 1_000) + "a = 1"
        #expect(throws: SQLParser.Failure.self) { try SQLParser.parse(nots) }
        let long = (0..<400).map { "a\($0) = \($0)" }.joined(separator: " OR ")
        #expect(throws: SQLParser.Failure.self) { try SQLParser.parse(long) }
        // Within the bounds, a long flat condition parses and evaluates.
        let flat = (0..<200).map { "a = \($0)" }.joined(separator: " OR ")
        #expect(try matches(flat, ["a": "199"]))
        let nested = String(repeating: "(", count: 60) + "a = 1" + String(repeating: ")", count: 60)
        #expect(try matches(nested, ["a": "1"]))
    }

    @Test("a refused expression is quoted back cut short")
    func longExpressionsAreQuotedShort() {
        let long = (0..<300).map { "a = \($0)" }.joined(separator: " OR ") + " OR"
        #expect {
            _ = try MessageFilter(.init(type: .sql, expression: long))
        } throws: { error in
            guard case BrokerError.illegalFilter(let why) = error else { return false }
            return why.count < 300 && why.contains("...") && why.contains("found the end")
        }
    }

    @Test("numbers at and past the 64-bit edges parse without trapping")
    func numericEdges() throws {
        #expect(try matches("a = -9223372036854775807", ["a": "-9223372036854775807"]))
        #expect(try matches("a > 9223372036854775807", ["a": "1e19"]))
        #expect(try matches("a < -9223372036854775808", ["a": "-1e19"]))
        #expect(throws: SQLParser.Failure.self) { try SQLParser.parse("a > 1e400") }
    }

    @Test("the filter kinds: tags, SQL, none, unknown type")
    func filterKinds() throws {
        #expect(try MessageFilter(nil) == .all)
        #expect(try MessageFilter(.init(type: .tag, expression: "a || b")).tags == ["a", "b"])
        let sql = try MessageFilter(.init(type: .sql, expression: "TAGS = 'a'"))
        #expect(sql.tags == nil)
        // A pull checks the SQL condition per message; a tag filter needs no such check.
        #expect(sql.propertyCheck != nil)
        #expect(try MessageFilter(.init(type: .tag, expression: "a")).propertyCheck == nil)
        #expect(throws: BrokerError.self) { try MessageFilter(.init(type: .UNRECOGNIZED(9), expression: "")) }
    }
}
