import RocketMQAPI
import RocketMQStore

/// What a subscription lets through: a tag expression or a SQL92 condition over properties.
///
/// The broker filters (RocketMQ's server-side filtering): a consumer never receives, and its
/// group never has to ack, a message its filter refuses.
enum MessageFilter: Sendable, Equatable {
    case tags(TagFilter)
    case sql(SQLExpression)

    /// Every message.
    static let all = MessageFilter.tags(.all)

    /// A subscription's filter expression; none means every message.
    /// - Throws: `BrokerError.illegalFilter` for an expression that does not parse, with where.
    init(_ expression: Apache_Rocketmq_V2_FilterExpression?) throws(BrokerError) {
        guard let expression else {
            self = .all
            return
        }
        switch expression.type {
        case .tag, .unspecified:
            self = .tags(try TagFilter(expression: expression.expression))
        case .sql:
            do {
                self = .sql(try SQLParser.parse(expression.expression))
            } catch {
                // The text is quoted back cut short: a refused expression may be 4 KiB or more.
                let text = expression.expression
                let shown = text.unicodeScalars.count <= 80 ? text : String(String.UnicodeScalarView(text.unicodeScalars.prefix(77))) + "..."
                throw .illegalFilter("SQL92 filter \(shown.debugDescription): \(error.reason) at character \(error.position + 1)")
            }
        case .UNRECOGNIZED(let value):
            throw .illegalFilter("unknown filter type \(value)")
        }
    }

    func matches(_ message: StoredMessage) -> Bool {
        switch self {
        case .tags(let filter): return filter.matches(message.tags)
        case .sql(let expression): return expression.matches(message.properties)
        }
    }

    /// The tags a tag filter accepts (nil: any), which the store can check on ConsumeQueue
    /// entries without reading the messages; nil for a SQL filter.
    var tags: Set<String>? {
        if case .tags(let filter) = self { return filter.tags }
        return nil
    }

    /// What the store must check on each message it reads besides `tags`: the SQL condition.
    /// `nil` for a tag filter, which `tags` covers whole.
    var propertyCheck: ((StoredMessage) -> Bool)? {
        guard case .sql(let expression) = self else { return nil }
        return { expression.matches($0.properties) }
    }
}
