import Foundation

extension Google_Protobuf_Timestamp {
    init(date: Date) {
        let milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded())
        self.init(seconds: milliseconds / 1000, nanos: Int32(milliseconds % 1000) * 1_000_000)
    }

    var date: Date { Date(timeIntervalSince1970: Double(seconds) + Double(nanos) / 1e9) }
}

extension Google_Protobuf_Duration {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self.init(seconds: seconds, nanos: Int32(attoseconds / 1_000_000_000))
    }

    var duration: Duration { .seconds(seconds) + .nanoseconds(Int64(nanos)) }
}

extension Apache_Rocketmq_V2_MessageQueue {
    /// The first address of the queue's broker, where calls about the queue go.
    var endpoint: Endpoint? {
        guard let address = broker?.endpoints?.addresses.first, address.port > 0 else { return nil }
        return Endpoint(host: address.host, port: Int(address.port))
    }

    var isWritable: Bool { permission == .write || permission == .readWrite }
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
