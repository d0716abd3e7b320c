import RocketMQAPI
import RocketMQNameServer
import RocketRPC
import Testing

@Suite("rocketmq.namesrv.v1.NameServer service")
struct RegistryServiceTests {
    @Test("the registration stream acks every message, and ending it unregisters the broker")
    func streamAcksAndEndUnregisters() async throws {
        let nameServer = try await RunningNameServer.start(expiry: .seconds(30))
        let channel = nameServer.channel()
        let client = Rocketmq_Namesrv_V1_NameServer.Client(channel: channel)
        let (turns, turn) = AsyncStream<Void>.makeStream()
        let acks = try await client.registerBroker(requests: { writer in
            var iterator = turns.makeAsyncIterator()
            try await writer.write(.init(content: .registration(registration().message)))
            _ = await iterator.next()
            try await writer.write(.init(content: .heartbeat(.init())))
            _ = await iterator.next()
            let topics = Rocketmq_Namesrv_V1_TopicList(topics: [TopicRoute(name: "audit", queueCount: 1).message])
            try await writer.write(.init(content: .heartbeat(.init(topics: topics))))
            _ = await iterator.next()
        }, handle: { responses in
            var acks: [Rocketmq_Namesrv_V1_RegisterBrokerResponse] = []
            for try await ack in responses {
                acks.append(ack)
                // Checked before the writer's next turn: after the third it ends the stream,
                // which unregisters the broker (a check after the yield raced with that).
                if acks.count == 3 {
                    #expect(nameServer.nameServer.routeTable.topics() == ["audit"])
                }
                turn.yield()
            }
            turn.finish()
            return acks
        })
        #expect(acks.map(\.sequence) == [1, 2, 3])
        #expect(acks.map(\.registered) == [true, false, false])
        #expect(acks.first?.brokerExpiry?.seconds == 30)
        #expect(try await eventually(within: .seconds(1)) { nameServer.nameServer.routeTable.brokers().isEmpty })

        await channel.close()
        await nameServer.stop()
    }

    @Test("a heartbeat after the broker expired registers it again")
    func heartbeatAfterExpiryReregisters() async throws {
        let nameServer = try await RunningNameServer.start(expiry: .seconds(1))
        let table = nameServer.nameServer.routeTable
        let channel = nameServer.channel()
        let client = Rocketmq_Namesrv_V1_NameServer.Client(channel: channel)
        let (turns, turn) = AsyncStream<Void>.makeStream()
        let acks = try await client.registerBroker(requests: { writer in
            var iterator = turns.makeAsyncIterator()
            try await writer.write(.init(content: .registration(registration().message)))
            _ = await iterator.next()
            try await writer.write(.init(content: .heartbeat(.init())))
            _ = await iterator.next()
        }, handle: { responses in
            var acks: [Rocketmq_Namesrv_V1_RegisterBrokerResponse] = []
            for try await ack in responses {
                acks.append(ack)
                if acks.count == 1 {
                    // Stay silent until the broker expired.
                    #expect(try await eventually(within: .seconds(3)) { table.brokers().isEmpty })
                } else {
                    #expect(table.topics() == ["orders"])
                }
                turn.yield()
            }
            return acks
        })
        #expect(acks.map(\.registered) == [true, true])
        await channel.close()
        await nameServer.stop()
    }

    @Test("a stream that starts with a heartbeat, or registers garbage, fails with INVALID_ARGUMENT", arguments: [
        Rocketmq_Namesrv_V1_RegisterBrokerRequest(content: .heartbeat(.init())),
        Rocketmq_Namesrv_V1_RegisterBrokerRequest(),
        Rocketmq_Namesrv_V1_RegisterBrokerRequest(content: .registration(registration(endpoints: ["nowhere"]).message)),
    ])
    func badFirstMessageRejected(_ first: Rocketmq_Namesrv_V1_RegisterBrokerRequest) async throws {
        let nameServer = try await RunningNameServer.start()
        let channel = nameServer.channel()
        let client = Rocketmq_Namesrv_V1_NameServer.Client(channel: channel)
        let error = await #expect(throws: RPCError.self) {
            try await client.registerBroker(requests: { writer in
                try await writer.write(first)
            }, handle: { responses in
                for try await _ in responses {}
            })
        }
        #expect(error?.code == .invalidArgument)
        #expect(nameServer.nameServer.routeTable.brokers().isEmpty)
        await channel.close()
        await nameServer.stop()
    }

    @Test("cluster info, topic route, topic list and explicit unregister reflect the table")
    func adminViews() async throws {
        let nameServer = try await RunningNameServer.start()
        let table = nameServer.nameServer.routeTable
        try table.register(registration(broker: "broker-a", id: 0, cluster: "east", topics: [TopicRoute(name: "orders", queueCount: 4)]))
        try table.register(registration(broker: "broker-a", id: 1, cluster: "east", endpoints: ["127.0.0.1:10912"], topics: [TopicRoute(name: "orders", queueCount: 4)]))
        try table.register(registration(broker: "broker-b", id: 0, cluster: "west", topics: [TopicRoute(name: "payments", queueCount: 2)]))
        let channel = nameServer.channel()
        let client = Rocketmq_Namesrv_V1_NameServer.Client(channel: channel)

        let clusters = try await client.getClusterInfo(.init()).clusters
        #expect(clusters.map(\.name) == ["east", "west"])
        let east = try #require(clusters.first)
        #expect(east.brokers.map(\.brokerId) == [0, 1])
        #expect(east.brokers.map(\.role) == [.master, .slave])
        #expect(east.brokers.last?.endpoints == ["127.0.0.1:10912"])
        #expect(east.brokers.allSatisfy { $0.topicCount == 1 && ($0.lastHeartbeat?.seconds ?? 0) > 1_700_000_000 })

        let route = try await client.getTopicRoute(.init(topic: "orders"))
        #expect(route.brokers.map(\.brokerId) == [0, 1])
        #expect(route.brokers.first?.route?.queueCount == 4)
        #expect(route.brokers.first?.route?.permission == 6)
        let missing = await #expect(throws: RPCError.self) { try await client.getTopicRoute(.init(topic: "nope")) }
        #expect(missing?.code == .notFound)

        #expect(try await client.listTopics(.init()).topics == ["orders", "payments"])
        #expect(try await client.listTopics(.init(clusterName: "west")).topics == ["payments"])

        _ = try await client.unregisterBroker(.init(brokerName: "broker-b", brokerId: 0))
        #expect(try await client.listTopics(.init()).topics == ["orders"])
        let gone = await #expect(throws: RPCError.self) { try await client.unregisterBroker(.init(brokerName: "broker-b", brokerId: 0)) }
        #expect(gone?.code == .notFound)

        await channel.close()
        await nameServer.stop()
    }
}
