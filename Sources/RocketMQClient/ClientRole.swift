/// What a session announces in its Telemetry settings and heartbeats.
struct ClientRole: Sendable {
    var clientType: Apache_Rocketmq_V2_ClientType
    /// The consumer group; `nil` for producers.
    var group: String?
    /// Topics a producer publishes to.
    var topics: [String] = []
    /// A producer's attempts per send, first included: announced as its `backoff_policy`, as the
    /// official clients do, so the broker (and its console) see the producer's own setting.
    var maxSendAttempts: Int?
    /// Topic → filter, for consumers.
    var subscriptions: [String: FilterExpression] = [:]
}
