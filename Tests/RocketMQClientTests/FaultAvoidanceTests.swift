import Foundation
import RocketMQClient
import Testing

@Suite struct FaultAvoidanceTests {
    @Test func sendsMoveToTheSurvivingBrokerWhenOneIsKilled() async throws {
        let topic = unique("ha")
        try await withTwoBrokers(topic: topic) { _, brokerB, configuration, _ in
            let producer = try await Producer.start(configuration: configuration)
            var before: [String] = []
            for index in 0..<8 { before.append(try await producer.send(Message(topic: topic, body: Array("x\(index)".utf8))).brokerName) }
            #expect(Set(before) == ["broker-a", "broker-b"], "round-robin should use both brokers: \(before)")

            brokerB.kill()
            let start = ContinuousClock.now
            var after: [String] = []
            for index in 0..<30 {
                after.append(try await producer.send(Message(topic: topic, body: Array("y\(index)".utf8))).brokerName)
            }
            let elapsed = ContinuousClock.now - start
            await producer.shutdown()
            #expect(Set(after) == ["broker-a"], "sends went to \(Set(after))")
            #expect(elapsed < .seconds(10), "30 sends took \(elapsed) with one broker down")
        }
    }

    /// With one attempt per send (`maxAttempts: 1`, or one-way sends) a failing broker is still
    /// isolated: otherwise every other send would go to a dead broker until the NameServer drops it.
    @Test(arguments: [false, true])
    func aProducerThatMakesOneAttemptIsolatesADeadBroker(afterOneWaySends: Bool) async throws {
        let topic = unique("one-attempt")
        try await withTwoBrokers(topic: topic) { _, brokerB, configuration, _ in
            let producer = try await Producer.start(configuration: configuration, topics: [topic], options: ProducerOptions(maxAttempts: 1))
            brokerB.kill()
            if afterOneWaySends {
                // They go round-robin over the route's 8 queues, so one full turn reaches the
                // dead broker's (4 could all fall on the live one's): it is isolated then.
                for index in 0..<8 { try producer.sendOneway(Message(topic: topic, body: Array("o\(index)".utf8))) }
                try await Task.sleep(for: .seconds(2))  // a refused connection fails them at once
            }
            var failures = 0
            for index in 0..<20 {
                do { _ = try await producer.send(Message(topic: topic, body: Array("s\(index)".utf8))) } catch { failures += 1 }
            }
            await producer.shutdown()
            // Without one-way sends first, the first send to the dead broker fails; later ones avoid it.
            #expect(failures <= (afterOneWaySends ? 0 : 1), "\(failures) of 20 single-attempt sends failed with one broker dead")
        }
    }

    @Test func anIsolatedBrokerIsTakenBackOnceItAnswersAHeartbeat() async throws {
        let topic = unique("readmit")
        try await withTwoBrokers(topic: topic) { _, brokerB, configuration, restartB in
            var configuration = configuration
            configuration.heartbeatInterval = .milliseconds(300)
            // The NameServer drops the dead broker from the route and takes it back on its
            // restart: the producer sees both soon, and heartbeats the endpoints its routes name.
            configuration.routeRefreshInterval = .milliseconds(500)
            // A window far longer than the test: only the heartbeat can end it.
            let producer = try await Producer.start(configuration: configuration, topics: [topic], options: ProducerOptions(isolationWindow: .seconds(600)))
            brokerB.kill()
            for index in 0..<8 { _ = try await producer.send(Message(topic: topic, body: Array("a\(index)".utf8))) }
            let restarted = try restartB()
            defer { restarted.stop() }
            let backOnB = await eventually(timeout: .seconds(30)) {
                guard let receipt = try? await producer.send(Message(topic: topic, body: Array("b".utf8))) else { return false }
                return receipt.brokerName == "broker-b"
            }
            await producer.shutdown()
            #expect(backOnB, "sends never reached the restarted broker: it stayed isolated")
        }
    }

    /// A producer whose route predates a cut in a topic's write queues picks a queue the broker
    /// now refuses (PRECONDITION_FAILED). It sends again from a fresh route (or, making one
    /// attempt per send, fails that send), and keeps sending to that broker, which still takes
    /// writes in its remaining queue: only a broker that takes none (a slave, a fenced master)
    /// is avoided.
    @Test(arguments: [3, 1])
    func aCutInWriteQueuesDoesNotIsolateTheBroker(maxAttempts: Int) async throws {
        let topic = unique("cut")
        try await withTwoBrokers(topic: topic, brokerArguments: ["--admin-token", "cut-token"]) { _, brokerB, configuration, _ in
            var configuration = configuration
            // The producer keeps its route until a send is refused, and no heartbeat takes an
            // isolated broker back within the test.
            configuration.routeRefreshInterval = .seconds(600)
            configuration.heartbeatInterval = .seconds(600)
            let producer = try await Producer.start(
                configuration: configuration, topics: [topic], options: ProducerOptions(maxAttempts: maxAttempts, isolationWindow: .seconds(600)))
            let cut = try runTool("mqadmin", ["updateTopic", "-b", brokerB.endpoint, "--token", "cut-token", "-t", topic, "-r", "4", "-w", "1"])
            try #require(cut.status == 0, "mqadmin: \(cut.output)")
            // The first 8 sends go round the old route's 8 queues, broker B's 1, 2 and 3 among them.
            var receipts: [SendReceipt] = []
            var refusals = 0
            for index in 0..<20 {
                do {
                    receipts.append(try await producer.send(Message(topic: topic, body: Array("c\(index)".utf8))))
                } catch {
                    refusals += 1
                }
            }
            await producer.shutdown()
            // With one attempt, the send that met the old queue fails; the next ones use a fresh route.
            #expect(refusals == (maxAttempts == 1 ? 1 : 0), "\(refusals) sends failed")
            let later = receipts.suffix(10).filter { $0.brokerName == "broker-b" }
            #expect(!later.isEmpty, "after the refusal every send avoided broker B: \(receipts.map { "\($0.brokerName)/\($0.queueId)" })")
            #expect(later.allSatisfy { $0.queueId == 0 }, "broker B took writes past its write count: \(later.map(\.queueId))")
        }
    }

    @Test func aConnectionThatStopsAnsweringIsClosedByKeepalive() async throws {
        try await withDevBroker { broker, devConfiguration in
            var configuration = devConfiguration
            configuration.requestTimeout = .seconds(15)
            configuration.keepaliveInterval = .milliseconds(300)
            configuration.keepaliveTimeout = .milliseconds(700)
            let topic = unique("silent")
            let producer = try await Producer.start(configuration: configuration, topics: [topic], options: ProducerOptions(maxAttempts: 1))
            _ = try await producer.send(Message(topic: topic, body: Array("first".utf8)))
            // Hung, not gone: the kernel keeps the connection, only an unanswered PING tells.
            broker.pause()
            let start = ContinuousClock.now
            var failed = false
            do { _ = try await producer.send(Message(topic: topic, body: Array("second".utf8))) } catch { failed = true }
            let elapsed = ContinuousClock.now - start
            broker.resume()
            await producer.shutdown()
            #expect(failed)
            #expect(elapsed < .seconds(6), "the send waited \(elapsed) on a connection that stopped answering (deadline 15 s)")
        }
    }

    @Test func aMessageGroupKeepsToItsQueueWhenItsBrokerHangs() async throws {
        let topic = unique("fifo-ha")
        try await withTwoBrokers(topic: topic, config: """
            {"topics": [{"name": "\(topic)", "queueCount": 2, "permission": 6, "messageTypes": ["FIFO"]}]}
            """) { _, brokerB, configuration, _ in
            var fast = configuration
            fast.requestTimeout = .milliseconds(800)
            let producer = try await Producer.start(configuration: fast, topics: [topic])
            // Which broker each of 16 groups hashes to.
            var brokerOf: [String: String] = [:]
            for index in 0..<16 {
                let group = "group-\(index)"
                brokerOf[group] = try await producer.send(Message(topic: topic, body: Array("first".utf8), messageGroup: group)).brokerName
            }
            let onB = try #require(brokerOf.first { $0.value == "broker-b" }?.key)
            let onA = try #require(brokerOf.first { $0.value == "broker-a" }?.key)
            // Hung, not gone: the route still names it, and a timed-out send may be stored there.
            brokerB.pause()
            defer { brokerB.resume() }
            // The group fails rather than continue on broker-a's queue, where a consumer would
            // read it beside (and out of order with) what broker-b holds.
            var movedTo: String?
            do {
                movedTo = try await producer.send(Message(topic: topic, body: Array("second".utf8), messageGroup: onB)).brokerName
            } catch {}
            #expect(movedTo == nil, "group \(onB) of broker-b was sent to \(movedTo ?? "")")
            // The other broker's groups carry on.
            #expect(try await producer.send(Message(topic: topic, body: Array("second".utf8), messageGroup: onA)).brokerName == "broker-a")
            brokerB.resume()
            await producer.shutdown()
        }
    }

    @Test func aPullKeepsWhatOneBrokerGaveWhenTheOtherIsDown() async throws {
        let topic = unique("pull-ha")
        let group = unique("g")
        try await withTwoBrokers(topic: topic, config: """
            {"topics": [{"name": "\(topic)", "queueCount": 2, "permission": 6, "messageTypes": ["NORMAL"]}],
             "groups": [{"name": "\(group)", "maxDeliveryAttempts": 16, "fifo": false, "consumeEnabled": true}]}
            """) { _, brokerB, configuration, _ in
            let consumer = try await PullConsumer.start(configuration: configuration, group: group, topic: topic, startFrom: .beginning)
            // Every queue's position is known before broker-b goes down.
            _ = try await consumer.pull(maxMessages: 32, awaitDuration: .zero)
            brokerB.kill()
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            var sent: Set<String> = []
            for index in 0..<12 { sent.insert(try await producer.send(Message(topic: topic, body: Array("m\(index)".utf8))).messageId) }
            await producer.shutdown()
            // Pulls start at each queue in turn; those that reach broker-b's queues after broker-a's
            // must still return broker-a's messages, whose positions have moved past them.
            var pulled: Set<String> = []
            for _ in 0..<12 where pulled.count < sent.count {
                if let messages = try? await consumer.pull(maxMessages: 32, awaitDuration: .milliseconds(200)) {
                    pulled.formUnion(messages.map(\.messageId))
                }
            }
            await consumer.shutdown()
            #expect(pulled == sent, "lost \(sent.subtracting(pulled).count) of \(sent.count)")
        }
    }
}

/// A NameServer and brokers "broker-a" and "broker-b", each with the broker config `config`
/// (JSON); `body` runs once both are in `topic`'s route.
private func withTwoBrokers<R>(
    topic: String, config: String? = nil, brokerArguments: [String] = [],
    _ body: (ServerProcess, ServerProcess, ClientConfiguration, _ restartB: () throws -> ServerProcess) async throws -> R
) async throws -> R {
    let directory = try TemporaryDirectory("cluster")
    defer { directory.remove() }
    // By default the topic has 4 NORMAL queues on each broker.
    let configJSON = config ?? """
        {"topics": [{"name": "\(topic)", "queueCount": 4, "permission": 6, "messageTypes": ["NORMAL"]}]}
        """
    let config = try directory.write("broker.json", configJSON)
    let nameServer = try ServerProcess("mqnamesrv", ["--port", "0"])
    defer { nameServer.stop() }
    let brokerA = try ServerProcess("mqbroker", [
        "--data", directory.file("a"), "--port", "0", "-n", nameServer.endpoint, "--broker-name", "broker-a", "--config", config,
    ] + brokerArguments)
    defer { brokerA.stop() }
    let brokerB = try ServerProcess("mqbroker", [
        "--data", directory.file("b"), "--port", "0", "-n", nameServer.endpoint, "--broker-name", "broker-b", "--config", config,
    ] + brokerArguments)
    defer { brokerB.stop() }
    let configuration = try ClientConfiguration(endpoints: nameServer.endpoint)
    let probe = try await Producer.start(configuration: configuration)
    let bothRouted = await eventually(timeout: .seconds(15)) {
        guard let route = try? await probe.route(of: topic, refresh: true) else { return false }
        return Set(route.queues.map { $0.broker?.name ?? "" }) == ["broker-a", "broker-b"]
    }
    await probe.shutdown()
    try #require(bothRouted)
    // Broker B again, on its port and data, after the test killed it.
    let restartB = {
        try ServerProcess("mqbroker", [
            "--data", directory.file("b"), "--port", String(brokerB.endpoint.split(separator: ":").last ?? "0"), "-n", nameServer.endpoint,
            "--broker-name", "broker-b", "--config", config,
        ] + brokerArguments)
    }
    return try await body(brokerA, brokerB, configuration, restartB)
}
