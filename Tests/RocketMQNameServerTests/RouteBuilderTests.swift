import RocketMQAPI
import RocketMQNameServer
import Testing

@Suite("RouteBuilder")
struct RouteBuilderTests {
    @Test("queues carry topic, id, permission, broker endpoints and message types")
    func queueFields() throws {
        let broker = registration(topics: [TopicRoute(name: "orders", queueCount: 3, permission: .readWrite, messageTypes: [.fifo, .normal])])
        let queues = RouteBuilder.messageQueues(for: "orders", namespace: "ns1", brokers: [broker])
        #expect(queues.map(\.id) == [0, 1, 2])
        let queue = try #require(queues.first)
        #expect(queue.topic == Apache_Rocketmq_V2_Resource(resourceNamespace: "ns1", name: "orders"))
        #expect(queue.permission == .readWrite)
        #expect(queue.acceptMessageTypes == [.fifo, .normal])
        #expect(queue.broker?.name == "broker-a")
        #expect(queue.broker?.id == 0)
        #expect(queue.broker?.endpoints == Apache_Rocketmq_V2_Endpoints(scheme: .ipv4, addresses: [Apache_Rocketmq_V2_Address(host: "127.0.0.1", port: 10911)]))
    }

    @Test("RocketMQ permission bits map to queue permissions; 0 hides the queues", arguments: [
        (TopicPermission.read, Apache_Rocketmq_V2_Permission.read),
        (.write, .write),
        (.readWrite, .readWrite),
        (TopicPermission(rawValue: 6), .readWrite),
    ])
    func permissions(_ permission: TopicPermission, _ expected: Apache_Rocketmq_V2_Permission) {
        let broker = registration(topics: [TopicRoute(name: "t", queueCount: 2, permission: permission)])
        #expect(RouteBuilder.messageQueues(for: "t", brokers: [broker]).map(\.permission) == [expected, expected])
        let hidden = registration(topics: [TopicRoute(name: "t", queueCount: 2, permission: [])])
        #expect(RouteBuilder.messageQueues(for: "t", brokers: [hidden]).isEmpty)
    }

    @Test("queues past the read count are not readable, past the write count not writable, past both left out")
    func readAndWriteQueueCounts() {
        let draining = registration(topics: [TopicRoute(name: "t", queueCount: 4, readQueues: 4, writeQueues: 2)])
        #expect(RouteBuilder.messageQueues(for: "t", brokers: [draining]).map(\.permission) == [.readWrite, .readWrite, .read, .read])
        let growing = registration(topics: [TopicRoute(name: "t", queueCount: 3, readQueues: 1, writeQueues: 3)])
        #expect(RouteBuilder.messageQueues(for: "t", brokers: [growing]).map(\.permission) == [.readWrite, .write, .write])
        // A read-only topic keeps its read count, and a slave serving it read-only too.
        let readOnly = registration(topics: [TopicRoute(name: "t", queueCount: 4, permission: .read, readQueues: 2, writeQueues: 4)])
        #expect(RouteBuilder.messageQueues(for: "t", brokers: [readOnly]).map(\.id) == [0, 1])
        let slave = registration(id: 1, topics: [TopicRoute(name: "t", queueCount: 4, readQueues: 3, writeQueues: 4)])
        #expect(RouteBuilder.messageQueues(for: "t", brokers: [slave]).map(\.permission) == [.read, .read, .read])
    }

    @Test("read and write counts travel to the NameServer, left 0 on the wire where they are the queue count")
    func readAndWriteQueueCountsOnTheWire() {
        let apart = TopicRoute(name: "t", queueCount: 8, readQueues: 8, writeQueues: 4)
        #expect(apart.message.readQueueCount == 0 && apart.message.writeQueueCount == 4)
        #expect(TopicRoute(apart.message) == apart)
        let plain = TopicRoute(name: "t", queueCount: 8)
        #expect(plain.message.readQueueCount == 0 && plain.message.writeQueueCount == 0)
        #expect(TopicRoute(plain.message) == plain)
        #expect((plain.readQueues, plain.writeQueues) == (8, 8))
    }

    @Test("no message types means NORMAL")
    func defaultMessageType() {
        let broker = registration(topics: [TopicRoute(name: "t", queueCount: 1, messageTypes: [])])
        #expect(RouteBuilder.messageQueues(for: "t", brokers: [broker]).first?.acceptMessageTypes == [.normal])
    }

    @Test("with a live master only the master serves; without one the first readable slave serves read-only")
    func masterAndSlaves() {
        let master = registration(id: 0, endpoints: ["10.0.0.1:8081"])
        let slave1 = registration(id: 1, endpoints: ["10.0.0.2:8081"])
        let slave2 = registration(id: 2, endpoints: ["10.0.0.3:8081"])
        let other = registration(broker: "broker-b", id: 0, endpoints: ["10.0.0.4:8081"])

        let withMaster = RouteBuilder.messageQueues(for: "orders", brokers: [slave1, master, other, slave2])
        #expect(withMaster.map { $0.broker?.name ?? "" } == Array(repeating: "broker-a", count: 4) + Array(repeating: "broker-b", count: 4))
        #expect(withMaster.allSatisfy { $0.broker?.id == 0 && $0.permission == .readWrite })

        let slavesOnly = RouteBuilder.messageQueues(for: "orders", brokers: [slave2, slave1])
        #expect(slavesOnly.count == 4)
        #expect(slavesOnly.allSatisfy { $0.broker?.id == 1 && $0.permission == .read })

        let writeOnlySlave = registration(id: 1, topics: [TopicRoute(name: "orders", permission: .write)])
        #expect(RouteBuilder.messageQueues(for: "orders", brokers: [writeOnlySlave]).isEmpty)
    }

    @Test("the address scheme follows the endpoints: IPv4, IPv6 or domain name")
    func addressSchemes() {
        #expect(RouteBuilder.endpoints(["127.0.0.1:1", "10.1.2.3:2"]).scheme == .ipv4)
        #expect(RouteBuilder.endpoints(["[::1]:8081"]) == Apache_Rocketmq_V2_Endpoints(scheme: .ipv6, addresses: [Apache_Rocketmq_V2_Address(host: "::1", port: 8081)]))
        #expect(RouteBuilder.endpoints(["broker-a.local:8081"]).scheme == .domainName)
        #expect(RouteBuilder.endpoints(["127.0.0.1:1", "broker-a.local:2"]).scheme == .domainName)
        #expect(RouteBuilder.endpoints(["999.1.1.1:1"]).scheme == .domainName)
    }
}
