import RocketMQAPI
@testable import RocketMQNameServer
import Testing

@Suite("RouteTable")
struct RouteTableTests {
    @Test("a registered broker serves its topics; unknown topics are not found")
    func registerServesTopics() throws {
        let table = RouteTable()
        try table.register(registration(topics: [TopicRoute(name: "orders", queueCount: 4), TopicRoute(name: "payments", queueCount: 2)]))
        #expect(table.topics() == ["orders", "payments"])
        #expect(try table.messageQueues(for: "orders").count == 4)
        #expect(table.brokers(for: "payments").map(\.brokerName) == ["broker-a"])
        #expect(throws: NameServerError.topicNotFound("nope")) { try table.messageQueues(for: "nope") }
    }

    @Test("unknown topics route like the TBW102 template of brokers that auto-create, and only those")
    func unknownTopicsFollowTheAutoCreateTemplate() throws {
        let table = RouteTable()
        try table.register(registration(topics: [TopicRoute(name: "orders", queueCount: 2)]))
        #expect(throws: NameServerError.topicNotFound("fresh")) { try table.messageQueues(for: "fresh") }
        try table.register(registration(broker: "broker-b", topics: [
            TopicRoute(name: TopicRoute.autoCreateTemplate, queueCount: 3, messageTypes: [.normal, .fifo]),
        ]))
        let queues = try table.messageQueues(for: "fresh")
        #expect(queues.count == 3)
        #expect(queues.allSatisfy { $0.topic?.name == "fresh" && $0.broker?.name == "broker-b" })
        #expect(queues.first?.acceptMessageTypes == [.normal, .fifo])
        // A real topic never borrows the template's route.
        #expect(try table.messageQueues(for: "orders").allSatisfy { $0.broker?.name == "broker-a" })
    }

    @Test("a second registration of the same broker replaces the first")
    func reregistrationReplaces() throws {
        let table = RouteTable()
        let first = try table.register(registration(topics: [TopicRoute(name: "orders")]))
        let second = try table.register(registration(topics: [TopicRoute(name: "payments")]))
        #expect(table.topics() == ["payments"])
        // The old token no longer removes the newer registration, nor keeps it alive.
        #expect(table.unregister(first) == nil)
        #expect(try table.heartbeat(first) == false)
        #expect(table.brokers().count == 1)
        #expect(table.unregister(second)?.topics.map(\.name) == ["payments"])
        #expect(table.brokers().isEmpty)
    }

    @Test("heartbeats keep a broker alive past the expiry and may replace its topics")
    func heartbeatExtendsLife() throws {
        let table = RouteTable(brokerExpiry: .seconds(120))
        let start = ContinuousClock.now
        let token = try table.register(registration(), now: start)
        #expect(try table.heartbeat(token, now: start.advanced(by: .seconds(100))))
        #expect(try table.heartbeat(token, topics: [TopicRoute(name: "audit", queueCount: 1)], now: start.advanced(by: .seconds(200))))
        #expect(table.topics(now: start.advanced(by: .seconds(300))) == ["audit"])
        #expect(table.removeExpired(now: start.advanced(by: .seconds(300))).isEmpty)
    }

    @Test("a silent broker expires: invisible at once, removed by the sweep, and its token is dead")
    func silentBrokerExpires() throws {
        let table = RouteTable(brokerExpiry: .seconds(120))
        let start = ContinuousClock.now
        let token = try table.register(registration(), now: start)
        try table.register(registration(broker: "broker-b"), now: start.advanced(by: .seconds(60)))
        let later = start.advanced(by: .seconds(121))
        #expect(table.brokers(now: later).map(\.registration.brokerName) == ["broker-b"])
        #expect(table.removeExpired(now: later).map(\.brokerName) == ["broker-a"])
        #expect(try table.heartbeat(token, now: later) == false)
        #expect(table.removeExpired(now: start.advanced(by: .seconds(181))).map(\.brokerName) == ["broker-b"])
        #expect(throws: NameServerError.topicNotFound("orders")) { try table.messageQueues(for: "orders", now: start.advanced(by: .seconds(181))) }
    }

    @Test("an operator can unregister a broker by name and id")
    func unregisterByKey() throws {
        let table = RouteTable()
        let token = try table.register(registration(id: 1))
        #expect(table.unregister(BrokerKey(brokerName: "broker-a", brokerId: 0)) == nil)
        #expect(table.unregister(BrokerKey(brokerName: "broker-a", brokerId: 1)) != nil)
        #expect(try table.heartbeat(token) == false)
    }

    @Test("topics can be listed per cluster")
    func topicsPerCluster() throws {
        let table = RouteTable()
        try table.register(registration(broker: "a", cluster: "east", topics: [TopicRoute(name: "t1")]))
        try table.register(registration(broker: "b", cluster: "west", topics: [TopicRoute(name: "t2")]))
        #expect(table.topics(inCluster: "east") == ["t1"])
        #expect(table.topics(inCluster: "north").isEmpty)
        #expect(table.topics() == ["t1", "t2"])
    }

    @Test("malformed registrations are rejected with the reason", arguments: [
        registration(broker: " "),
        registration(cluster: ""),
        registration(id: -1),
        registration(endpoints: []),
        registration(endpoints: ["localhost"]),
        registration(endpoints: ["127.0.0.1:0"]),
        registration(endpoints: ["::1:8081"]),
        registration(topics: [TopicRoute(name: "orders", queueCount: 0)]),
        registration(topics: [TopicRoute(name: "orders"), TopicRoute(name: "orders")]),
    ])
    func malformedRegistrationsRejected(_ bad: BrokerRegistration) {
        let table = RouteTable()
        #expect {
            try table.register(bad)
        } throws: { error in
            guard case .invalidRegistration? = error as? NameServerError else { return false }
            return true
        }
        #expect(table.brokers().isEmpty)
    }
}
