/// Where a ``PullConsumer`` starts on a queue it has no saved position for.
public enum PullStartPosition: Sendable, Hashable {
    /// The oldest message still stored.
    case beginning
    /// Only messages sent after the consumer started.
    case end
}
