import Foundation

extension Apache_Rocketmq_V2_MessageQueue {
    /// The first address of the queue's broker, where calls about the queue go.
    var endpoint: Endpoint? {
        guard let address = broker?.endpoints?.addresses.first, address.port > 0 else { return nil }
        return Endpoint(host: address.host, port: Int(address.port))
    }

    /// Whether the queue takes sends (permission WRITE or READ_WRITE).
    public var isWritable: Bool { permission == .write || permission == .readWrite }
    var isReadable: Bool { permission == .read || permission == .readWrite }
    var brokerName: String { broker?.name ?? "" }
}

extension Endpoint {
    var proto: Apache_Rocketmq_V2_Endpoints {
        var endpoints = Apache_Rocketmq_V2_Endpoints()
        endpoints.scheme = host.allSatisfy { $0.isNumber || $0 == "." } ? .ipv4 : (host.contains(":") ? .ipv6 : .domainName)
        endpoints.addresses = [Apache_Rocketmq_V2_Address(host: host, port: Int32(port))]
        return endpoints
    }
}
