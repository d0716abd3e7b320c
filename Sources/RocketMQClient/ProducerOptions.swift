/// How a ``Producer`` retries, avoids failing brokers and compresses.
public struct ProducerOptions: Sendable {
    /// Attempts per send, first included. Default 3. Announced to the broker as the producer's
    /// `backoff_policy`; a `max_attempts` in the server's settings does not override it.
    public var maxAttempts: Int
    /// How long a broker that failed a send is skipped by queue selection, at most: a broker that
    /// answers the next heartbeat (`ClientConfiguration.heartbeatInterval`) is taken back at once.
    /// Default 30 s.
    public var isolationWindow: Duration
    /// Bodies larger than this many bytes are gzip-compressed. Default 4 KiB; `Int.max` disables.
    public var compressionThreshold: Int
    /// Answers the broker's check-backs of transactions left open; needed for
    /// ``Producer/beginTransaction()``. Default none.
    public var transactionChecker: TransactionChecker?

    /// Options with the documented defaults unless given.
    public init(
        maxAttempts: Int = 3, isolationWindow: Duration = .seconds(30), compressionThreshold: Int = 4096,
        transactionChecker: TransactionChecker? = nil
    ) {
        self.maxAttempts = maxAttempts
        self.isolationWindow = isolationWindow
        self.compressionThreshold = compressionThreshold
        self.transactionChecker = transactionChecker
    }
}
