/// How a ``PushConsumer`` receives and how much it keeps in memory.
public struct PushConsumerOptions: Sendable {
    /// Handlers running at once. Messages of one message group always go to the same handler
    /// slot, one after another, so FIFO order holds at any concurrency. Default 4.
    public var concurrency: Int
    /// Messages received but not yet handled, at most; receiving pauses while the cache is full.
    /// Default 256.
    public var cacheCapacity: Int
    /// How long a received message stays hidden from the rest of the group at a time. The broker
    /// extends it for as long as this consumer is alive (`auto_renew`), also while the message
    /// waits in the cache for a handler; while its handler runs, the consumer extends it itself
    /// every third of the duration. Default 30 s.
    public var invisibleDuration: Duration
    /// How long one receive waits on the broker for messages. Default 5 s.
    public var longPollingTimeout: Duration
    /// Most messages per receive. Default 32.
    public var batchSize: Int

    /// Options with the documented defaults unless given.
    public init(
        concurrency: Int = 4, cacheCapacity: Int = 256, invisibleDuration: Duration = .seconds(30),
        longPollingTimeout: Duration = .seconds(5), batchSize: Int = 32
    ) {
        self.concurrency = concurrency
        self.cacheCapacity = cacheCapacity
        self.invisibleDuration = invisibleDuration
        self.longPollingTimeout = longPollingTimeout
        self.batchSize = batchSize
    }
}
