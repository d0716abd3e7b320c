import Foundation
@testable import RocketMQClient
import Testing

@Suite struct PushConsumerTests {
    @Test func messageGroupsAreHandledInSendOrderUnderConcurrency() async throws {
        let group = unique("fifo")
        let config = """
            {"groups": [{"name": "\(group)", "maxDeliveryAttempts": 16, "fifo": true, "consumeEnabled": true}]}
            """
        try await withDevBroker(config: config) { _, configuration in
            let topic = unique("orders")
            let groups = ["g0", "g1", "g2", "g3"]
            let perGroup = 20
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            // Each message group is produced by its own task, all at once.
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                for messageGroup in groups {
                    tasks.addTask {
                        for sequence in 0..<perGroup {
                            _ = try await producer.send(Message(
                                topic: topic, body: Array("\(messageGroup):\(sequence)".utf8), messageGroup: messageGroup))
                        }
                    }
                }
                try await tasks.waitForAll()
            }
            await producer.shutdown()
            let handled = Collector<String>()
            let consumer = try await PushConsumer.start(
                configuration: configuration, group: group, subscriptions: [topic: .all],
                options: PushConsumerOptions(concurrency: 4)
            ) { message in
                // Uneven handler times would reorder a group if it were handled concurrently.
                try? await Task.sleep(for: .milliseconds(Int.random(in: 0...3)))
                // The first delivery of each group's 5th message fails: its redelivery must still
                // come before the 6th.
                if message.text.hasSuffix(":5"), message.deliveryAttempt == 1 { return .failure }
                handled.append(message.text)
                return .success
            }
            let done = await eventually(timeout: .seconds(30)) { handled.count >= groups.count * perGroup }
            await consumer.shutdown()
            #expect(done, "handled \(handled.count) of \(groups.count * perGroup)")
            for messageGroup in groups {
                let sequence = handled.all.filter { $0.hasPrefix(messageGroup + ":") }.compactMap { Int($0.split(separator: ":")[1]) }
                #expect(sequence == Array(0..<perGroup), "group \(messageGroup) out of order: \(sequence)")
            }
        }
    }

    @Test func anAckThatFailsWhileTheBrokerHangsIsTriedUntilItAnswers() async throws {
        // The broker holds a FIFO group's next message until the last one is settled: an ack
        // given up on would stall the group for as long as the broker keeps the message hidden.
        let group = unique("fifo")
        let config = """
            {"groups": [{"name": "\(group)", "maxDeliveryAttempts": 16, "fifo": true, "consumeEnabled": true}]}
            """
        try await withDevBroker(config: config) { broker, devConfiguration in
            var configuration = devConfiguration
            configuration.requestTimeout = .milliseconds(500)
            let topic = unique("orders")
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            for text in ["m1", "m2"] { _ = try await producer.send(Message(topic: topic, body: Array(text.utf8), messageGroup: "g")) }
            await producer.shutdown()
            let handled = Collector<String>()
            let consumer = try await PushConsumer.start(
                configuration: configuration, group: group, subscriptions: [topic: .all],
                options: PushConsumerOptions(invisibleDuration: .seconds(60), longPollingTimeout: .seconds(1))
            ) { message in
                handled.append(message.text + "-start")
                if message.text == "m1" { try? await Task.sleep(for: .milliseconds(1000)) }  // the broker hangs meanwhile
                handled.append(message.text)
                return .success
            }
            #expect(await eventually { handled.all.contains("m1-start") })
            broker.pause()
            // m1's ack times out for ~8 s: more than a handful of attempts.
            try await Task.sleep(for: .seconds(9))
            broker.resume()
            let next = await eventually(timeout: .seconds(20)) { handled.all.contains("m2") }
            await consumer.shutdown()
            #expect(next, "the group never moved past m1 once the broker answered again: \(handled.all)")
            #expect(handled.all.filter { $0 == "m1" }.count == 1, "m1 was handled again: \(handled.all)")
        }
    }

    @Test func aSQL92SubscriptionHandsTheHandlerOnlyMatchingMessages() async throws {
        try await withDevBroker { _, configuration in
            let topic = unique("push-sql")
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            for index in 0..<40 {
                let priority = index % 4 == 0 ? "high" : "low"
                _ = try await producer.send(Message(topic: topic, body: Array("m\(index)".utf8), properties: ["priority": priority]))
            }
            await producer.shutdown()
            let handled = Collector<String>()
            let consumer = try await PushConsumer.start(
                configuration: configuration, group: unique("g"), subscriptions: [topic: .sql92("priority = 'high'")]
            ) { message in
                handled.append(message.text)
                return .success
            }
            let done = await eventually(timeout: .seconds(15)) { handled.count >= 10 }
            // A moment more: a message the filter should have refused would arrive in it.
            try await Task.sleep(for: .milliseconds(300))
            await consumer.shutdown()
            #expect(done, "handled \(handled.count) of 10")
            #expect(Set(handled.all) == Set(stride(from: 0, to: 40, by: 4).map { "m\($0)" }))
            #expect(handled.count == 10)
        }
    }

    @Test func failedMessagesAreRetriedWithBackoffThenDeadLettered() async throws {
        let group = unique("retry")
        let config = """
            {"groups": [{"name": "\(group)", "maxDeliveryAttempts": 2, "fifo": false, "consumeEnabled": true}]}
            """
        try await withDevBroker(config: config) { _, configuration in
            let topic = unique("fails")
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            let sent = try await producer.send(Message(topic: topic, body: Array("poison".utf8), properties: ["p": "1"]))
            await producer.shutdown()
            let attempts = Collector<(Int32, ContinuousClock.Instant)>()
            let consumer = try await PushConsumer.start(configuration: configuration, group: group, subscriptions: [topic: .all]) { message in
                attempts.append((message.deliveryAttempt, .now))
                return .failure
            }
            let dead = try await SimpleConsumer.start(
                configuration: configuration, group: unique("dlq-reader"), subscriptions: ["%DLQ%\(group)": .all],
                awaitDuration: .milliseconds(500))
            let deadLetters = try await receiveAll(dead, count: 1, timeout: .seconds(15))
            await dead.shutdown()
            await consumer.shutdown()
            #expect(attempts.all.map(\.0) == [1, 2], "delivery attempts \(attempts.all.map(\.0))")
            if attempts.count == 2 {
                // The server's ladder starts at 1 s.
                #expect(attempts.all[1].1 - attempts.all[0].1 >= .milliseconds(900))
            }
            #expect(deadLetters.map(\.messageId) == [sent.messageId])
            #expect(deadLetters.first?.text == "poison")
            #expect(deadLetters.first?.properties["p"] == "1")
        }
    }

    @Test func theCacheBoundsMessagesWaitingForASlowHandler() async throws {
        try await withDevBroker { _, configuration in
            let topic = unique("slow")
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            _ = try await producer.send((0..<30).map { Message(topic: topic, body: Array("s\($0)".utf8)) })
            await producer.shutdown()
            let handled = Collector<String>()
            let consumer = try await PushConsumer.start(
                configuration: configuration, group: unique("g"), subscriptions: [topic: .all],
                options: PushConsumerOptions(concurrency: 1, cacheCapacity: 5, longPollingTimeout: .milliseconds(500))
            ) { message in
                try? await Task.sleep(for: .milliseconds(30))
                handled.append(message.text)
                return .success
            }
            var peak = 0
            while handled.count < 30 {
                peak = max(peak, await consumer.cachedMessageCount)
                try await Task.sleep(for: .milliseconds(5))
                if peak > 5 { break }
            }
            await consumer.shutdown()
            #expect(peak <= 5, "the cache held \(peak) messages, more than its capacity of 5")
            #expect(peak >= 1)
            #expect(Set(handled.all).count == 30)
        }
    }

    @Test func anIdleConsumerCachesNothingWhileItsReceivesWait() async throws {
        try await withDevBroker { _, configuration in
            let topic = unique("idle")
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            let handled = Collector<String>()
            let consumer = try await PushConsumer.start(
                configuration: configuration, group: unique("g"), subscriptions: [topic: .all],
                options: PushConsumerOptions(concurrency: 2, cacheCapacity: 64, longPollingTimeout: .seconds(5))
            ) { message in
                handled.append(message.text)
                return .success
            }
            // Its receives are long-polling now, each holding places for a batch: none is a message.
            try await Task.sleep(for: .milliseconds(300))
            #expect(await consumer.cachedMessageCount == 0)
            _ = try await producer.send(Message(topic: topic, body: Array("one".utf8)))
            for _ in 0..<500 where handled.count < 1 { try await Task.sleep(for: .milliseconds(10)) }
            #expect(handled.all == ["one"])
            try await Task.sleep(for: .milliseconds(100))
            #expect(await consumer.cachedMessageCount == 0, "a handled message leaves the cache, and the next long polls hold no messages")
            await producer.shutdown()
            await consumer.shutdown()
        }
    }

    @Test func aSlowHandlerHoldsUpOnlyItsOwnWorker() async throws {
        try await withDevBroker { _, configuration in
            let topic = unique("one-slow")
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            _ = try await producer.send(Message(topic: topic, body: Array("slow".utf8)))
            for index in 0..<100 { _ = try await producer.send(Message(topic: topic, body: Array("fast-\(index)".utf8))) }
            await producer.shutdown()
            let handled = Collector<String>()
            let slowStarted = Collector<Bool>()
            let consumer = try await PushConsumer.start(
                configuration: configuration, group: unique("g"), subscriptions: [topic: .all],
                options: PushConsumerOptions(concurrency: 4, cacheCapacity: 16, longPollingTimeout: .milliseconds(500))
            ) { message in
                if message.text == "slow" {
                    slowStarted.append(true)
                    try? await Task.sleep(for: .seconds(8))
                }
                handled.append(message.text)
                return .success
            }
            // While one handler sleeps, the other three workers take everything else.
            let othersDone = await eventually(timeout: .seconds(6)) { handled.all.filter { $0.hasPrefix("fast-") }.count == 100 }
            let fast = handled.all.filter { $0.hasPrefix("fast-") }.count
            await consumer.shutdown()
            #expect(slowStarted.count == 1)
            #expect(othersDone, "only \(fast) of 100 messages were handled while one handler was slow")
        }
    }

    @Test func aPushConsumerFollowsItsQueuesToTheBrokersNewAddress() async throws {
        // After a failover the route names the same broker (and queues) at another address: the
        // receive loops must move there rather than poll the dead one.
        let directory = try TemporaryDirectory("moved")
        defer { directory.remove() }
        let topic = unique("moved")
        let config = try directory.write("broker.json", """
            {"autoCreate": true, "topics": [{"name": "\(topic)", "queueCount": 2, "permission": 6, "messageTypes": ["NORMAL"]}]}
            """)
        let nameServer = try ServerProcess("mqnamesrv", ["--port", "0"])
        defer { nameServer.stop() }
        func broker(_ data: String) throws -> ServerProcess {
            try ServerProcess("mqbroker", [
                "--data", directory.file(data), "--port", "0", "-n", nameServer.endpoint, "--broker-name", "broker-m", "--config", config,
            ])
        }
        let first = try broker("first")
        defer { first.stop() }
        var configuration = try ClientConfiguration(endpoints: nameServer.endpoint)
        configuration.routeRefreshInterval = .milliseconds(500)
        let producer = try await Producer.start(configuration: configuration)
        #expect(await eventually { (try? await producer.route(of: topic, refresh: true)) != nil }, "the broker never registered")
        let handled = Collector<String>()
        let consumer = try await PushConsumer.start(
            configuration: configuration, group: unique("g"), subscriptions: [topic: .all],
            options: PushConsumerOptions(longPollingTimeout: .milliseconds(500))
        ) { message in
            handled.append(message.text)
            return .success
        }
        _ = try await producer.send(Message(topic: topic, body: Array("before".utf8)))
        #expect(await eventually(timeout: .seconds(10)) { handled.all.contains("before") })

        first.kill()
        let second = try broker("second")
        defer { second.stop() }
        var sent = false
        let deadline = ContinuousClock.now + .seconds(20)
        while !sent, ContinuousClock.now < deadline {
            do {
                _ = try await producer.send(Message(topic: topic, body: Array("after".utf8)))
                sent = true
            } catch {
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        let moved = await eventually(timeout: .seconds(15)) { handled.all.contains("after") }
        // Telemetry follows too: none is kept reopening to the old address.
        let producerTelemetry = await eventually(timeout: .seconds(5)) { await producer.session.telemetryEndpoints.map(\.port) == [second.port] }
        let consumerTelemetry = await eventually(timeout: .seconds(5)) { await consumer.session.telemetryEndpoints.map(\.port) == [second.port] }
        await producer.shutdown()
        await consumer.shutdown()
        #expect(sent)
        #expect(moved, "the message stored at the broker's new address was never handled")
        #expect(producerTelemetry && consumerTelemetry, "Telemetry is still kept open to the broker's old address")
    }

    @Test func messagesWaitingInTheCacheLongerThanTheInvisibleDurationAreHandledOnce() async throws {
        try await withDevBroker { _, configuration in
            let topic = unique("cached")
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            _ = try await producer.send((0..<8).map { Message(topic: topic, body: Array("c\($0)".utf8)) })
            await producer.shutdown()
            // One handler at 400 ms a message: the last of 8 cached messages waits ~2.8 s for it,
            // well past the 1 s invisible duration it was received with.
            let handled = Collector<(String, Int32)>()
            let consumer = try await PushConsumer.start(
                configuration: configuration, group: unique("g"), subscriptions: [topic: .all],
                options: PushConsumerOptions(concurrency: 1, cacheCapacity: 8, invisibleDuration: .seconds(1), longPollingTimeout: .milliseconds(500))
            ) { message in
                handled.append((message.text, message.deliveryAttempt))
                try? await Task.sleep(for: .milliseconds(400))
                return .success
            }
            _ = await eventually(timeout: .seconds(10)) { handled.count >= 8 }
            // Anything redelivered would arrive within another invisible duration or two.
            try await Task.sleep(for: .seconds(2))
            await consumer.shutdown()
            let texts = handled.all.map(\.0)
            #expect(texts.count == 8, "handled \(texts.count) times: \(texts.sorted())")
            #expect(Set(texts).count == 8)
            #expect(handled.all.allSatisfy { $0.1 == 1 }, "redelivered: \(handled.all.filter { $0.1 > 1 })")
        }
    }

    @Test func consumptionContinuesAfterTheBrokerIsKilledAndRestarted() async throws {
        let directory = try TemporaryDirectory("restart")
        defer { directory.remove() }
        var broker = try ServerProcess.devBroker(data: directory.file("data"))
        let port = broker.port
        defer { broker.stop() }
        let configuration = try ClientConfiguration(endpoints: broker.endpoint)
        let topic = unique("restart")
        let handled = Collector<String>()
        let consumer = try await PushConsumer.start(
            configuration: configuration, group: unique("g"), subscriptions: [topic: .all],
            // Longer than the test's waits: a message that a receive marks in flight but never hands
            // over (a store read racing an append used to cause that) would stay hidden and fail it.
            options: PushConsumerOptions(invisibleDuration: .seconds(60), longPollingTimeout: .seconds(1))
        ) { message in
            handled.append(message.text)
            return .success
        }
        let producer = try await Producer.start(configuration: configuration, topics: [topic])
        for index in 0..<10 { _ = try await producer.send(Message(topic: topic, body: Array("before-\(index)".utf8))) }
        #expect(await eventually { Set(handled.all).count >= 10 })

        broker.kill()
        broker = try ServerProcess.devBroker(data: directory.file("data"), port: port)
        // The producer retries onto the restarted broker; the consumer's receive loops reconnect.
        var sent = 0
        let deadline = ContinuousClock.now + .seconds(20)
        while sent < 10, ContinuousClock.now < deadline {
            do {
                _ = try await producer.send(Message(topic: topic, body: Array("after-\(sent)".utf8)))
                sent += 1
            } catch {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        let expected = Set((0..<10).map { "before-\($0)" } + (0..<10).map { "after-\($0)" })
        let complete = await eventually(timeout: .seconds(20)) { expected.isSubset(of: Set(handled.all)) }
        await producer.shutdown()
        await consumer.shutdown()
        #expect(sent == 10)
        #expect(complete, "missing after restart: \(expected.subtracting(handled.all).sorted())")
    }
}
