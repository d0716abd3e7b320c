/// How a ``Producer`` retries, avoids failing brokers and compresses.
public struct ProducerOptions: Sendable {
    /// Attempts per send, first included, when the server's settings name none. Default 3.
    public var maxAttempts: Int
    /// How long a broker that failed a send is skipped by queue selection. Default 30 s.
    public var isolationWindow: Duration
    /// Bodies larger than this many bytes are gzip-compressed. Default 4 KiB; `Int.max` disables.
    public var compressionThreshold: Int

    /// Options with the documented defaults unless given.
    public init(maxAttempts: Int = 3, isolationWindow: Duration = .seconds(30), compressionThreshold: Int = 4096) {
        self.maxAttempts = maxAttempts
        self.isolationWindow = isolationWindow
        self.compressionThreshold = compressionThreshold
    }
}
