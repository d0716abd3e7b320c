import RocketMQAPI
import RocketMQNameServer
import RocketRPC
import Testing

@Suite("apache.rocketmq.v2.MessagingService on a NameServer")
struct RouteQueryServiceTests {
    // A whitespace-only value cannot be tested here: HTTP/2 forbids leading or trailing whitespace in
    // field values, so nghttp2 resets such a stream before it reaches the service.
    @Test("QueryRoute without a usable client id answers CLIENT_ID_REQUIRED", arguments: [nil, ""] as [String?])
    func clientIDRequired(_ clientID: String?) async throws {
        let nameServer = try await RunningNameServer.start()
        try nameServer.nameServer.routeTable.register(registration())
        let channel = nameServer.channel()
        let response = try await queryRoute(channel, topic: "orders", clientID: clientID)
        #expect(response.status?.code == .clientIdRequired)
        #expect(response.messageQueues.isEmpty)
        await channel.close()
        await nameServer.stop()
    }

    @Test("QueryRoute answers OK with the queues, TOPIC_NOT_FOUND for an unknown topic; authorization is tolerated")
    func queryRouteStatuses() async throws {
        let nameServer = try await RunningNameServer.start()
        try nameServer.nameServer.routeTable.register(registration())
        let channel = nameServer.channel()
        let client = Apache_Rocketmq_V2_MessagingService.Client(channel: channel)
        let options = CallOptions(metadata: ["x-mq-client-id": "c1", "authorization": "MQv2-HMAC-SHA1 Credential=ak, SignedHeaders=x-mq-date-time, Signature=00"])

        let found = try await client.queryRoute(.init(topic: .init(name: "orders")), options: options)
        #expect(found.status == Apache_Rocketmq_V2_Status(code: .ok, message: "OK"))
        #expect(found.messageQueues.count == 4)
        let missing = try await client.queryRoute(.init(topic: .init(name: "nope")), options: options)
        #expect(missing.status?.code == .topicNotFound)
        #expect(missing.status?.message.contains("nope") == true)
        let blank = try await client.queryRoute(.init(topic: .init(name: "")), options: options)
        #expect(blank.status?.code == .illegalTopic)
        await channel.close()
        await nameServer.stop()
    }

    @Test("Heartbeat and NotifyClientTermination answer OK; broker-only unary methods NOT_IMPLEMENTED; streaming ones UNIMPLEMENTED")
    func otherMethods() async throws {
        let nameServer = try await RunningNameServer.start()
        let channel = nameServer.channel()
        let client = Apache_Rocketmq_V2_MessagingService.Client(channel: channel)
        let options = CallOptions(metadata: ["x-mq-client-id": "c1"])

        #expect(try await client.heartbeat(.init(), options: options).status?.code == .ok)
        #expect(try await client.notifyClientTermination(.init(), options: options).status?.code == .ok)
        #expect(try await client.heartbeat(.init()).status?.code == .clientIdRequired)
        let send = try await client.sendMessage(.init(), options: options)
        #expect(send.status?.code == .notImplemented)
        #expect(send.status?.message.contains("QueryRoute") == true)
        #expect(try await client.ackMessage(.init(), options: options).status?.code == .notImplemented)
        #expect(try await client.ackMessage(.init()).status?.code == .clientIdRequired)
        let receive = await #expect(throws: RPCError.self) {
            try await client.receiveMessage(.init(), options: options) { responses in
                for try await _ in responses {}
            }
        }
        #expect(receive?.code == .unimplemented)
        await channel.close()
        await nameServer.stop()
    }

    @Test("Telemetry echoes each Settings command with OK and stays open until the client closes")
    func telemetryEchoesSettings() async throws {
        let nameServer = try await RunningNameServer.start()
        let channel = nameServer.channel()
        let client = Apache_Rocketmq_V2_MessagingService.Client(channel: channel)
        let settings = Apache_Rocketmq_V2_Settings(clientType: .producer, requestTimeout: Google_Protobuf_Duration(seconds: 3))
        let (turns, turn) = AsyncStream<Void>.makeStream()
        let replies = try await client.telemetry(options: CallOptions(metadata: ["x-mq-client-id": "c1"]), requests: { writer in
            var iterator = turns.makeAsyncIterator()
            for _ in 0..<2 {
                try await writer.write(Apache_Rocketmq_V2_TelemetryCommand(command: .settings(settings)))
                _ = await iterator.next()
            }
            // Still open after two answers: the NameServer waits for the client to close.
            try await Task.sleep(for: .milliseconds(200))
        }, handle: { responses in
            var replies: [Apache_Rocketmq_V2_TelemetryCommand] = []
            for try await reply in responses {
                replies.append(reply)
                turn.yield()
            }
            return replies
        })
        #expect(replies.count == 2)
        #expect(replies.allSatisfy { $0.status?.code == .ok && $0.command == .settings(settings) })
        await channel.close()
        await nameServer.stop()
    }
}
