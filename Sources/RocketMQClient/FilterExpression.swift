import Foundation

/// Which messages of a topic a consumer wants: a tag expression evaluated by the broker.
public struct FilterExpression: Sendable, Hashable {
    /// The expression text: `*` for all, or tags joined by `||`.
    public var expression: String

    /// Every message.
    public static let all = FilterExpression(expression: "*")

    /// Messages whose tag is one of `expression`'s (`"a || b"`), or all with `"*"`.
    public static func tags(_ expression: String) -> FilterExpression { FilterExpression(expression: expression) }

    /// Whether a message with `tag` passes (the broker filters too; this guards local caches).
    public func matches(tag: String?) -> Bool {
        let alternatives = expression.split(separator: "||").map { $0.trimmingCharacters(in: .whitespaces) }
        if alternatives.isEmpty || alternatives.contains("*") { return true }
        guard let tag else { return false }
        return alternatives.contains(tag)
    }

    var proto: Apache_Rocketmq_V2_FilterExpression { .init(type: .tag, expression: expression) }
}
