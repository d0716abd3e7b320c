import RocketMQStore

/// Everything that configures a broker. Defaults are a production single broker; `--dev`
/// turns on topic and group auto-creation. The executable loads it from a file, env vars and
/// flags; nothing below reads globals.
public struct BrokerConfiguration: Sendable {
    /// Cluster this broker belongs to, as reported to NameServers. Default `DefaultCluster`.
    public var clusterName = "DefaultCluster"
    /// The broker's name; a master and its slaves share it. Default `broker-a`.
    public var brokerName = "broker-a"
    /// 0 for the master, > 0 for slaves.
    public var brokerId: Int32 = 0
    /// Address to listen on. Default 127.0.0.1.
    public var host = "127.0.0.1"
    /// gRPC port (0 picks a free one). Default 8081, the RocketMQ 5 proxy's port.
    public var port = 8081
    /// The `host:port` clients are told to use (routes), when it differs from the listen address
    /// (NAT, port mapping, 0.0.0.0). Default: the listen address.
    public var advertisedAddress: String?
    /// NameServers to register with (`host:port`). Empty: the broker answers routes itself.
    public var nameServers: [String] = []
    /// The store: data directory, flush mode, segment sizes, retention.
    public var store: StoreConfiguration
    /// Create unknown topics on first send or subscribe. Off by default, on in dev mode.
    public var autoCreateTopics = false
    /// Create unknown consumer groups on first use. Off by default, on in dev mode.
    public var autoCreateGroups = false
    /// Queues of an auto-created topic. Default 8.
    public var defaultQueueCount: Int32 = 8
    /// Largest message body accepted. Default 4 MiB.
    public var maxBodySize = 4 << 20
    /// The largest gRPC message the broker's server accepts: room above `maxBodySize`, so that an
    /// oversized body gets the protocol's MESSAGE_BODY_TOO_LARGE rather than a transport-level
    /// RESOURCE_EXHAUSTED.
    public var maxReceiveMessageSize: Int { max(16 << 20, maxBodySize * 2) }
    /// Longest long-poll a receive may ask for; longer requests are clamped. Default 30 s.
    public var maxLongPollingTimeout: Duration = .seconds(30)
    /// Shortest and longest invisible duration a receive may ask for.
    public var minInvisibleDuration: Duration = .seconds(1)
    public var maxInvisibleDuration: Duration = .seconds(12 * 3600)
    /// Largest receive batch. Default 1024.
    public var maxReceiveBatchSize: Int32 = 1024
    /// Delivery attempts before a message goes to `%DLQ%<group>` when the group does not say. Default 16.
    public var defaultMaxDeliveryAttempts: Int32 = 16
    /// How long a half message waits for its producer's commit or rollback before the broker
    /// checks it back, unless the producer set its own `orphaned_transaction_recovery_duration`.
    /// Default 6 s (RocketMQ's `transactionTimeOut`).
    public var transactionTimeout: Duration = .seconds(6)
    /// Between two check-backs of the same open transaction. Default 60 s.
    public var transactionCheckInterval: Duration = .seconds(60)
    /// Check-backs of one transaction before the broker rolls it back. Default 15.
    public var transactionCheckMax = 15
    /// The credential admin calls that change state must present (`authorization: Bearer <token>`);
    /// nil turns admin auth off (dev mode). `mqbroker` generates one for non-dev brokers.
    public var adminToken: String?
    /// Master (async or sync replication) or slave. Default `ASYNC_MASTER`, which with no
    /// slave is a single broker.
    public var role: BrokerRole = .asyncMaster
    /// A slave's master, `host:port` of its gRPC port. Required for a slave.
    public var masterAddress: String?
    /// A sync master's longest wait for a slave to acknowledge a send before it answers
    /// `SLAVE_PERSISTENCE_TIMEOUT` (the message stays stored on the master). Default 3 s.
    public var replicationTimeout: Duration = .seconds(3)
    /// etcd client endpoints (`host:port`) for automatic failover. Empty: no election; the roles
    /// are as configured and a slave is promoted by an operator. With etcd, the members of a
    /// broker group elect their master: `role` is the kind of master this broker is once elected
    /// (async or sync), `brokerId` its member id (1, 2, ...; it registers with id 0 while master).
    public var etcdEndpoints: [String] = []
    /// How long the master's etcd lease lives without renewal: how soon a slave takes over from
    /// a master that died, and how soon a master cut off from etcd stops taking writes. Default 10 s.
    public var failoverLeaseTTL: Duration = .seconds(10)
    /// How long a master that registers with NameServers holds writes at start while none has
    /// answered its registration (see `Broker.holdWritesUntilRegistered()`): then it takes writes
    /// anyway, as a broker that cannot reach its NameServers must. Default 10 s.
    public var registrationHold: Duration = .seconds(10)

    public init(dataDirectory: String) {
        store = StoreConfiguration(dataDirectory: dataDirectory)
    }

    /// The address put in routes: the advertised one, else the listen address.
    public func routeAddress(boundPort: Int) -> String {
        advertisedAddress ?? "\(host == "0.0.0.0" ? "127.0.0.1" : host):\(boundPort)"
    }
}
