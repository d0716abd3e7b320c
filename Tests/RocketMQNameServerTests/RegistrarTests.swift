import RocketMQAPI
@testable import RocketMQNameServer
import RocketRPC
import Testing

@Suite("NameServerRegistrar against in-process NameServers")
struct RegistrarTests {
    @Test("a registrar registers with two NameServers and both answer QueryRoute; cancelling it unregisters at once")
    func registersWithEveryNameServerAndUnregistersOnCancel() async throws {
        let first = try await RunningNameServer.start()
        let second = try await RunningNameServer.start()
        let channels = [first.channel(), second.channel()]
        let registrar = NameServerRegistrar(nameServers: [first.address, second.address], heartbeatInterval: .seconds(60)) {
            registration(topics: [TopicRoute(name: "orders", queueCount: 4, messageTypes: [.normal, .fifo])])
        }
        let running = Task { await registrar.run() }

        for channel in channels {
            #expect(try await eventually { try await routeCode(channel, topic: "orders") == .ok })
            let route = try await queryRoute(channel, topic: "orders")
            #expect(route.messageQueues.map(\.id) == [0, 1, 2, 3])
            #expect(route.messageQueues.first?.acceptMessageTypes == [.normal, .fifo])
            #expect(route.messageQueues.first?.broker?.endpoints?.addresses == [Apache_Rocketmq_V2_Address(host: "127.0.0.1", port: 10911)])
        }
        #expect(registrar.registeredWith == [first.address, second.address].sorted())

        let cancelled = ContinuousClock.now
        running.cancel()
        for channel in channels {
            #expect(try await eventually(within: .seconds(1)) { try await routeCode(channel, topic: "orders") == .topicNotFound })
        }
        #expect(ContinuousClock.now - cancelled < .seconds(2))
        await running.value

        for channel in channels { await channel.close() }
        await first.stop()
        await second.stop()
    }

    @Test("registrationChanged pushes a new topic list without waiting for the heartbeat")
    func registrationChangedPushesAtOnce() async throws {
        let nameServer = try await RunningNameServer.start()
        let channel = nameServer.channel()
        let box = RegistrationBox(registration())
        let registrar = NameServerRegistrar(nameServers: [nameServer.address], heartbeatInterval: .seconds(60)) { box.value }
        let running = Task { await registrar.run() }

        #expect(try await eventually { try await routeCode(channel, topic: "orders") == .ok })
        #expect(try await routeCode(channel, topic: "payments") == .topicNotFound)
        box.value.topics.append(TopicRoute(name: "payments", queueCount: 2, permission: .read))
        registrar.registrationChanged()
        #expect(try await eventually(within: .seconds(1)) { try await routeCode(channel, topic: "payments") == .ok })
        #expect(try await queryRoute(channel, topic: "payments").messageQueues.map(\.permission) == [.read, .read])

        // Anything but the topics changing re-registers the broker under its new identity.
        box.value.brokerName = "broker-z"
        registrar.registrationChanged()
        #expect(try await eventually(within: .seconds(1)) {
            try await queryRoute(channel, topic: "orders").messageQueues.first?.broker?.name == "broker-z"
        })
        #expect(nameServer.nameServer.routeTable.brokers().map(\.registration.brokerName) == ["broker-z"])

        running.cancel()
        await running.value
        await channel.close()
        await nameServer.stop()
    }

    @Test("a broker whose heartbeats stop expires and its routes vanish")
    func silentBrokerExpires() async throws {
        let nameServer = try await RunningNameServer.start(expiry: .seconds(1))
        let channel = nameServer.channel()
        // Heartbeats far apart: only the registration itself reaches the NameServer in this test.
        let registrar = NameServerRegistrar(nameServers: [nameServer.address], heartbeatInterval: .seconds(60)) { registration() }
        // Taken before the registration can happen, so it bounds the expiry from below however
        // late a busy machine lets this test see each step (seeing the route first was not).
        let started = ContinuousClock.now
        let running = Task { await registrar.run() }

        #expect(try await eventually { try await routeCode(channel, topic: "orders") == .ok })
        #expect(try await eventually(within: .seconds(3)) { try await routeCode(channel, topic: "orders") == .topicNotFound })
        // Not at once: a full second of silence after the registration (less a margin for the
        // NameServer's clock reads).
        #expect(ContinuousClock.now - started >= .milliseconds(900))
        // The sweep removes it from the table too.
        #expect(try await eventually(within: .seconds(1)) { nameServer.nameServer.routeTable.brokers().isEmpty })

        running.cancel()
        await running.value
        await channel.close()
        await nameServer.stop()
    }

    @Test("heartbeats keep a broker registered past the expiry")
    func heartbeatsKeepBrokerAlive() async throws {
        // 3 s expiry against 200 ms heartbeats: a wide margin, since the whole suite runs in
        // parallel on two cores and a loaded scheduler can delay a heartbeat by a second.
        let nameServer = try await RunningNameServer.start(expiry: .seconds(3))
        let channel = nameServer.channel()
        let registrar = NameServerRegistrar(nameServers: [nameServer.address], heartbeatInterval: .milliseconds(200)) { registration() }
        let running = Task { await registrar.run() }

        #expect(try await eventually { try await routeCode(channel, topic: "orders") == .ok })
        for _ in 0..<16 {
            try await Task.sleep(for: .milliseconds(250))
            #expect(try await routeCode(channel, topic: "orders") == .ok)
        }

        running.cancel()
        await running.value
        await channel.close()
        await nameServer.stop()
    }

    @Test("a registrar reconnects to a NameServer that restarted")
    func reconnectsAfterRestart() async throws {
        let original = try await RunningNameServer.start()
        let port = original.port
        let registrar = NameServerRegistrar(
            nameServers: [original.address], heartbeatInterval: .milliseconds(200), maxReconnectDelay: .milliseconds(500)
        ) { registration() }
        let running = Task { await registrar.run() }
        #expect(try await eventually { registrar.registeredWith == [original.address] })

        await original.stop()
        #expect(try await eventually { registrar.registeredWith.isEmpty })
        let restarted = try await RunningNameServer.start(port: port)
        let channel = restarted.channel()
        #expect(try await eventually(within: .seconds(10)) { try await routeCode(channel, topic: "orders") == .ok })

        running.cancel()
        await running.value
        await channel.close()
        await restarted.stop()
    }
}

@Suite("NameServerRegistrar messages and lifecycle")
struct RegistrarMessageTests {
    @Test("after the registration: bare heartbeats, topics only when they changed, a full registration when the broker did")
    func nextMessage() {
        let sent = registration()
        #expect(NameServerRegistrar.update(from: sent, to: sent).content == .heartbeat(.init()))

        var moreTopics = sent
        moreTopics.topics.append(TopicRoute(name: "payments"))
        #expect(NameServerRegistrar.update(from: sent, to: moreTopics).content
            == .heartbeat(.init(topics: .init(topics: moreTopics.topics.map(\.message)))))

        var noTopics = sent
        noTopics.topics = []
        #expect(NameServerRegistrar.update(from: sent, to: noTopics).content == .heartbeat(.init(topics: .init(topics: []))))

        var moved = sent
        moved.endpoints = ["127.0.0.1:20911"]
        #expect(NameServerRegistrar.update(from: sent, to: moved).content == .registration(moved.message))
    }

    @Test("with no usable NameServer, run() waits for cancellation instead of returning")
    func runWaitsWithoutNameServers() async throws {
        let registrar = NameServerRegistrar(nameServers: ["not-an-address"]) { registration() }
        let running = Task { await registrar.run() }
        let finished = Task {
            await running.value
            return ContinuousClock.now
        }
        try await Task.sleep(for: .milliseconds(300))
        let cancelled = ContinuousClock.now
        running.cancel()
        #expect(await finished.value >= cancelled)
    }
}

extension RegistrarTests {
    @Test("a master refused for a lower epoch than the live master's withdraws from every NameServer and is told so")
    func aSupersededMasterWithdrawsEverywhere() async throws {
        let refusing = try await RunningNameServer.start()
        let accepting = try await RunningNameServer.start()
        try refusing.nameServer.routeTable.register(registration(endpoints: ["127.0.0.1:10921"], masterEpoch: 42))
        let refusals = Collected<RPCError>()
        let registrar = NameServerRegistrar(
            nameServers: [accepting.address, refusing.address], heartbeatInterval: .seconds(60), maxReconnectDelay: .milliseconds(200),
            onRefused: { refusals.append($0) }
        ) { registration(endpoints: ["127.0.0.1:10911"], masterEpoch: 7) }
        let running = Task { await registrar.run() }
        #expect(try await eventually { registrar.isWithdrawn && !refusals.values.isEmpty })
        #expect(refusals.values.allSatisfy { $0.code == .failedPrecondition && $0.message.contains("higher epoch 42") })
        // The NameServer that had taken the registration forgets it; nobody is asked again.
        #expect(try await eventually { accepting.nameServer.routeTable.brokers().isEmpty })
        try await Task.sleep(for: .milliseconds(600))
        #expect(refusals.values.count == 1)
        #expect(registrar.registeredWith.isEmpty)
        #expect(accepting.nameServer.routeTable.brokers().isEmpty)
        #expect(refusing.nameServer.routeTable.brokers().map(\.registration.endpoints) == [["127.0.0.1:10921"]])
        running.cancel()
        await running.value
        await accepting.stop()
        await refusing.stop()
    }
}

extension RegistrarTests {
    @Test("a master a promoted one replaces (the NameServer heard from the former first) is refused at once, not at its next heartbeat")
    func aMasterReplacedByAHigherEpochIsRefusedAtOnce() async throws {
        let nameServer = try await RunningNameServer.start()
        let refusals = Collected<RPCError>()
        // No heartbeat for a minute: only the NameServer ending the stream can tell it in time.
        let registrar = NameServerRegistrar(
            nameServers: [nameServer.address], heartbeatInterval: .seconds(60), onRefused: { refusals.append($0) }
        ) { registration(endpoints: ["127.0.0.1:10911"], masterEpoch: 0) }
        let running = Task { await registrar.run() }
        #expect(try await eventually { registrar.registeredWith == [nameServer.address] })

        let replaced = ContinuousClock.now
        try nameServer.nameServer.routeTable.register(registration(endpoints: ["127.0.0.1:10921"], masterEpoch: 5))
        #expect(try await eventually(within: .seconds(5)) { registrar.isWithdrawn && !refusals.values.isEmpty })
        #expect(ContinuousClock.now - replaced < .seconds(5))
        #expect(refusals.values.first?.code == .failedPrecondition)
        #expect(refusals.values.first?.message.contains("higher epoch 5") == true)
        // The promoted master keeps its registration: the former one's stream ending removed nothing.
        #expect(nameServer.nameServer.routeTable.brokers().map(\.registration.endpoints) == [["127.0.0.1:10921"]])
        running.cancel()
        await running.value
        await nameServer.stop()
    }
}
