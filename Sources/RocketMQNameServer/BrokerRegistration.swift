import RocketMQAPI

/// What one broker tells the NameServers it serves: who it is, where clients reach it, and its topics.
///
/// `brokerName` and `brokerId` identify a broker: a later registration with the same pair replaces the
/// earlier one. Brokers of one group (a master and its slaves) share `brokerName`.
public struct BrokerRegistration: Sendable, Equatable {
    /// The cluster the broker belongs to, for example `DefaultCluster`.
    public var clusterName: String
    /// The broker group's name, shared by a master and its slaves, for example `broker-a`.
    public var brokerName: String
    /// `0` for the group's master; slaves use 1, 2, ...
    public var brokerId: Int
    /// Where clients reach the broker's gRPC port, as `host:port` (`[::1]:8081` for IPv6). At least one.
    public var endpoints: [String]
    /// Every topic the broker serves.
    public var topics: [TopicRoute]
    /// A master's epoch: 0 for a master never promoted, the time of its promotion by an operator
    /// (milliseconds since 1970) for a promoted one. A master with a lower epoch than another live
    /// master of the same broker name is refused (``RouteTable/register(_:now:)``). Slaves and
    /// masters elected through etcd send 0.
    public var masterEpoch: Int64

    public init(
        clusterName: String, brokerName: String, brokerId: Int = 0, endpoints: [String], topics: [TopicRoute] = [], masterEpoch: Int64 = 0
    ) {
        self.clusterName = clusterName
        self.brokerName = brokerName
        self.brokerId = brokerId
        self.endpoints = endpoints
        self.topics = topics
        self.masterEpoch = masterEpoch
    }

    /// Whether this broker is its group's master (broker id 0).
    public var isMaster: Bool { brokerId == 0 }

    /// The pair that identifies the broker.
    public var key: BrokerKey { BrokerKey(brokerName: brokerName, brokerId: brokerId) }

    /// The route of `topic` on this broker, if it serves it.
    public func topic(named topic: String) -> TopicRoute? {
        topics.first { $0.name == topic }
    }

    /// Checks what a NameServer needs to route to this broker.
    /// - Throws: ``NameServerError/invalidRegistration(broker:reason:)`` naming the first problem found.
    public func validate() throws(NameServerError) {
        func invalid(_ reason: String) -> NameServerError {
            .invalidRegistration(broker: "\(brokerName)/\(brokerId)", reason: reason)
        }
        if clusterName.allSatisfy(\.isWhitespace) { throw invalid("the cluster name is blank") }
        if brokerName.allSatisfy(\.isWhitespace) { throw invalid("the broker name is blank") }
        if brokerId < 0 || brokerId > Int(Int32.max) { throw invalid("broker id \(brokerId) is out of range 0...\(Int32.max)") }
        if endpoints.isEmpty { throw invalid("no endpoints") }
        if masterEpoch < 0 { throw invalid("master epoch \(masterEpoch) is negative") }
        for endpoint in endpoints where BrokerEndpoint(parsing: endpoint) == nil {
            throw invalid("endpoint \"\(endpoint)\" is not host:port")
        }
        try Self.validate(topics: topics, broker: "\(brokerName)/\(brokerId)")
    }

    /// Checks a topic list (names unique and not blank, at least one queue each, read and write
    /// queue counts within it).
    static func validate(topics: [TopicRoute], broker: String) throws(NameServerError) {
        var seen = Set<String>()
        for topic in topics {
            if topic.name.allSatisfy(\.isWhitespace) {
                throw .invalidRegistration(broker: broker, reason: "a topic has a blank name")
            }
            if topic.queueCount < 1 || topic.queueCount > Int(Int32.max) {
                throw .invalidRegistration(broker: broker, reason: "topic \"\(topic.name)\" has \(topic.queueCount) queues")
            }
            if !(0...topic.queueCount).contains(topic.readQueues) || !(0...topic.queueCount).contains(topic.writeQueues) {
                throw .invalidRegistration(
                    broker: broker, reason: "topic \"\(topic.name)\" has \(topic.readQueues) read and \(topic.writeQueues) write queues of \(topic.queueCount)")
            }
            if !seen.insert(topic.name).inserted {
                throw .invalidRegistration(broker: broker, reason: "topic \"\(topic.name)\" is listed twice")
            }
        }
    }
}

// MARK: Wire form (rocketmq.namesrv.v1.BrokerRegistration)

extension BrokerRegistration {
    /// Reads the registry protocol's form (not validated: see ``validate()``).
    public init(_ message: Rocketmq_Namesrv_V1_BrokerRegistration) {
        self.init(
            clusterName: message.clusterName,
            brokerName: message.brokerName,
            brokerId: Int(clamping: message.brokerId),
            endpoints: message.endpoints,
            topics: message.topics.map(TopicRoute.init),
            masterEpoch: message.masterEpoch
        )
    }

    /// The registry protocol's form.
    public var message: Rocketmq_Namesrv_V1_BrokerRegistration {
        Rocketmq_Namesrv_V1_BrokerRegistration(
            clusterName: clusterName, brokerName: brokerName, brokerId: Int64(brokerId), endpoints: endpoints, topics: topics.map(\.message),
            masterEpoch: masterEpoch)
    }
}
