import Foundation

/// Which messages of a topic a consumer wants: a tag expression or a SQL92 condition over the
/// message's properties, evaluated by the broker.
public struct FilterExpression: Sendable, Hashable {
    /// How `expression` is read.
    public enum Kind: Sendable, Hashable {
        /// `*` for all, or tags joined by `||`.
        case tag
        /// A SQL92 condition over properties, as RocketMQ's `MessageSelector.bySql`.
        case sql92
    }

    /// The expression text.
    public var expression: String
    public var kind: Kind = .tag

    /// Every message.
    public static let all = FilterExpression(expression: "*")

    /// Messages whose tag is one of `expression`'s (`"a || b"`), or all with `"*"`.
    public static func tags(_ expression: String) -> FilterExpression { FilterExpression(expression: expression) }

    /// Messages whose properties satisfy `condition`, for example
    /// `"region = 'eu' AND amount BETWEEN 10 AND 100"`: comparisons (`=`, `<>`, `<`, `<=`,
    /// `>`, `>=`), `[NOT] BETWEEN`, `[NOT] IN ('a', 'b')`, `IS [NOT] NULL`, `CONTAINS`,
    /// `STARTSWITH`, `ENDSWITH`, `AND`, `OR`, `NOT`. Property values are strings and compare as
    /// numbers when ordered or compared with a number; a message without a property the
    /// condition needs does not match. The message's tag is the property `TAGS`. A condition
    /// the broker cannot parse, or one that could never be true (`a > '100'`, `a = NULL`),
    /// fails the consumer's start with `ILLEGAL_FILTER_EXPRESSION`.
    public static func sql92(_ condition: String) -> FilterExpression { FilterExpression(expression: condition, kind: .sql92) }

    /// Whether a message with `tag` passes a tag expression (the broker filters too; this
    /// guards local caches). Always true for a SQL92 condition, which only the broker evaluates.
    public func matches(tag: String?) -> Bool {
        guard kind == .tag else { return true }
        let alternatives = expression.split(separator: "||").map { $0.trimmingCharacters(in: .whitespaces) }
        if alternatives.isEmpty || alternatives.contains("*") { return true }
        guard let tag else { return false }
        return alternatives.contains(tag)
    }

    var proto: Apache_Rocketmq_V2_FilterExpression { .init(type: kind == .tag ? .tag : .sql, expression: expression) }
}
