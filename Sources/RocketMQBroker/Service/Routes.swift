import RocketMQAPI
import RocketMQNameServer

extension Broker {
    /// This broker as NameServers see it: name, id, the address clients should use, its topics.
    public var registration: BrokerRegistration {
        var routes = topics.all.filter { !SystemTopic.isSystem($0.name) && !SystemTopic.isRetry($0.name) }.map(\.route)
        if configuration.autoCreateTopics {
            routes.append(autoCreatedTopic(named: TopicRoute.autoCreateTemplate).route)
        }
        return registration(topics: routes)
    }

    private func registration(topics: [TopicRoute]) -> BrokerRegistration {
        let configuration = self.configuration
        return BrokerRegistration(
            clusterName: configuration.clusterName, brokerName: configuration.brokerName,
            brokerId: Int(configuration.brokerId), endpoints: [routeAddress], topics: topics,
            masterEpoch: configuration.brokerId == 0 ? masterEpoch : 0)
    }

    /// This broker's queues of `topic`, as a route answers them when no NameServer is involved
    /// (same rules as the NameServer's, over this one broker).
    func messageQueues(for topic: TopicConfig, namespace: String) -> [Apache_Rocketmq_V2_MessageQueue] {
        RouteBuilder.messageQueues(for: topic.name, namespace: namespace, brokers: [registration(topics: [topic.route])])
    }
}
