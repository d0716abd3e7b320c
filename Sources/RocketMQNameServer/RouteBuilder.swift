import RocketMQAPI

/// Turns broker registrations into the route clients receive from `QueryRoute`.
///
/// Pure functions, shared by the NameServer (over every live broker) and by a broker that answers
/// `QueryRoute` itself when it runs without a NameServer (over its own registration).
///
/// Rules: per broker group (`brokerName`), the master (id 0) serves the topic's queues with the
/// topic's permission. When the group has no live master, its slave with the lowest id that serves
/// the topic readably serves its queues **read-only**, so consumers keep reading while producers go
/// elsewhere. A queue past the topic's read queue count is not readable, one past its write queue
/// count not writable (RocketMQ's `readQueueNums`/`writeQueueNums`); queues with neither are left out.
public enum RouteBuilder {
    /// The message queues of `topic` across `brokers`, sorted by broker name, then queue id.
    ///
    /// - Parameters:
    ///   - namespace: echoed into each queue's `topic.resourceNamespace`.
    ///   - brokers: live brokers; those that do not serve `topic` are ignored, and so are endpoints
    ///     that are not `host:port`.
    /// - Returns: an empty array when no broker serves the topic readably or writably.
    public static func messageQueues(
        for topic: String,
        namespace: String = "",
        brokers: [BrokerRegistration]
    ) -> [Apache_Rocketmq_V2_MessageQueue] {
        let groups = Dictionary(grouping: brokers, by: \.brokerName)
        var queues: [Apache_Rocketmq_V2_MessageQueue] = []
        for name in groups.keys.sorted() {
            guard let members = groups[name], let (broker, route, permission) = server(of: topic, in: members) else { continue }
            let resource = Apache_Rocketmq_V2_Resource(resourceNamespace: namespace, name: topic)
            let target = Apache_Rocketmq_V2_Broker(name: broker.brokerName, id: Int32(clamping: broker.brokerId), endpoints: endpoints(broker.endpoints))
            for id in 0..<max(0, route.queueCount) {
                let queuePermission = route.permission(ofQueue: id).intersection(permission).queuePermission
                guard queuePermission != .none else { continue }
                queues.append(Apache_Rocketmq_V2_MessageQueue(
                    topic: resource,
                    id: Int32(clamping: id),
                    permission: queuePermission,
                    broker: target,
                    acceptMessageTypes: route.acceptedMessageTypes
                ))
            }
        }
        return queues
    }

    /// The client-facing form of `host:port` endpoints. The scheme is IPv4 or IPv6 when every
    /// address is a literal of that family, otherwise domain name. Unparsable entries are skipped.
    public static func endpoints(_ endpoints: [String]) -> Apache_Rocketmq_V2_Endpoints {
        let parsed = endpoints.compactMap(BrokerEndpoint.init(parsing:))
        let schemes = Set(parsed.map(\.scheme.rawValue))
        let scheme: Apache_Rocketmq_V2_AddressScheme = schemes.count == 1 ? (parsed.first?.scheme ?? .ipv4) : .domainName
        return Apache_Rocketmq_V2_Endpoints(scheme: scheme, addresses: parsed.map(\.address))
    }

    /// Which member of one broker group serves `topic`, with which route and permission.
    private static func server(of topic: String, in group: [BrokerRegistration]) -> (BrokerRegistration, TopicRoute, TopicPermission)? {
        if let master = group.first(where: \.isMaster) {
            guard let route = master.topic(named: topic) else { return nil }
            return (master, route, route.permission)
        }
        let slaves = group.sorted { $0.brokerId < $1.brokerId }
        for slave in slaves {
            if let route = slave.topic(named: topic), route.permission.contains(.read) {
                return (slave, route, .read)
            }
        }
        return nil
    }
}
