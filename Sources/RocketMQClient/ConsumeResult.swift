/// What a ``PushConsumer`` handler decides for one message.
public enum ConsumeResult: Sendable, Hashable {
    /// Processed: the message is acked.
    case success
    /// Not processed: it is redelivered after the server's back-off, then dead-lettered.
    case failure
}
