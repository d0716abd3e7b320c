/// What a session announces in its Telemetry settings and heartbeats.
struct ClientRole: Sendable {
    var clientType: Apache_Rocketmq_V2_ClientType
    /// The consumer group; `nil` for producers.
    var group: String?
    /// Topics a producer publishes to.
    var topics: [String] = []
    /// Topic → filter, for consumers.
    var subscriptions: [String: FilterExpression] = [:]
}
