/// How a ``NameServer`` treats its brokers. Every field has a documented default.
public struct NameServerConfiguration: Sendable {
    /// A broker silent for longer than this is forgotten. Default 120 s (RocketMQ's).
    public var brokerExpiry: Duration
    /// How often expired brokers are swept out (reads ignore them at once regardless). Default: a
    /// quarter of ``brokerExpiry``, at most 10 s.
    public var expiryCheckInterval: Duration

    public init(brokerExpiry: Duration = .seconds(120), expiryCheckInterval: Duration? = nil) {
        self.brokerExpiry = brokerExpiry
        self.expiryCheckInterval = expiryCheckInterval ?? min(brokerExpiry / 4, .seconds(10))
    }
}
