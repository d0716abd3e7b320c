import RocketMQAPI

extension Broker {
    /// This broker's queues of `topic`, as a route answers them when no NameServer is involved.
    func messageQueues(for topic: TopicConfig, namespace: String) -> [Apache_Rocketmq_V2_MessageQueue] {
        let permission: Apache_Rocketmq_V2_Permission
        switch (topic.isReadable, topic.isWritable) {
        case (true, true): permission = .readWrite
        case (true, false): permission = .read
        case (false, true): permission = .write
        case (false, false): permission = .none
        }
        let broker = Apache_Rocketmq_V2_Broker(
            name: configuration.brokerName, id: configuration.brokerId, endpoints: Self.endpoints(routeAddress))
        return (0..<topic.queueCount).map { id in
            Apache_Rocketmq_V2_MessageQueue(
                topic: Apache_Rocketmq_V2_Resource(resourceNamespace: namespace, name: topic.name),
                id: id, permission: permission, broker: broker, acceptMessageTypes: topic.acceptedMessageTypes)
        }
    }

    /// `host:port` as protocol endpoints (IPv4 for dotted quads, a domain name otherwise).
    static func endpoints(_ address: String) -> Apache_Rocketmq_V2_Endpoints {
        let host = address.split(separator: ":").dropLast().joined(separator: ":")
        let port = Int32(address.split(separator: ":").last ?? "") ?? 0
        let isIPv4 = host.split(separator: ".").count == 4 && host.split(separator: ".").allSatisfy { UInt8($0) != nil }
        return Apache_Rocketmq_V2_Endpoints(
            scheme: isIPv4 ? .ipv4 : .domainName,
            addresses: [Apache_Rocketmq_V2_Address(host: host, port: port)])
    }
}
