import Foundation
import RocketMQClient
import Testing

@Suite struct PullConsumerTests {
    /// Pulls until `count` messages arrived or 10 s passed.
    func pullAll(_ consumer: PullConsumer, count: Int) async throws -> [ReceivedMessage] {
        var pulled: [ReceivedMessage] = []
        let deadline = ContinuousClock.now + .seconds(10)
        while pulled.count < count, ContinuousClock.now < deadline {
            pulled += try await consumer.pull(maxMessages: 32, awaitDuration: .milliseconds(200))
        }
        return pulled
    }

    @Test func broadcastingGivesEveryInstanceEveryMessage() async throws {
        try await withDevBroker { _, configuration in
            let topic = unique("broadcast")
            let group = unique("g")
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            let first = try await PullConsumer.start(configuration: configuration, group: group, topic: topic, startFrom: .end)
            let second = try await PullConsumer.start(configuration: configuration, group: group, topic: topic, startFrom: .end)
            for index in 0..<25 { _ = try await producer.send(Message(topic: topic, body: Array("b\(index)".utf8))) }
            await producer.shutdown()
            let expected = Set((0..<25).map { "b\($0)" })
            let a = try await pullAll(first, count: 25)
            let b = try await pullAll(second, count: 25)
            #expect(a.count == 25 && Set(a.map(\.text)) == expected)
            #expect(b.count == 25 && Set(b.map(\.text)) == expected)
            let nothing = try await first.pull(maxMessages: 32, awaitDuration: .milliseconds(100))
            #expect(nothing.isEmpty)
            await first.shutdown()
            await second.shutdown()
        }
    }

    @Test func aPullGetsADelayMessageOnlyWhenDueAndNeverARecalledOne() async throws {
        try await withDevBroker { _, configuration in
            let topic = unique("pull-delay")
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            let consumer = try await PullConsumer.start(configuration: configuration, group: unique("g"), topic: topic, startFrom: .end)
            let due = Date().addingTimeInterval(2.5)
            let recalled = try await producer.send(Message(topic: topic, body: Array("recalled".utf8), deliveryTimestamp: due))
            _ = try await producer.send(Message(topic: topic, body: Array("kept".utf8), deliveryTimestamp: due))
            _ = try await producer.recall(topic: topic, recallHandle: try #require(recalled.recallHandle))
            await producer.shutdown()
            let pulled = try await pullAll(consumer, count: 1)
            let arrived = Date()
            #expect(pulled.map(\.text) == ["kept"])
            #expect(arrived >= due.addingTimeInterval(-0.1), "pulled \(due.timeIntervalSince(arrived)) s before its delivery timestamp")
            // Past its time, the recalled one is not in the queue either.
            let nothing = try await consumer.pull(maxMessages: 32, awaitDuration: .milliseconds(500))
            #expect(nothing.isEmpty, "pulled \(nothing.map(\.text))")
            await consumer.shutdown()
        }
    }

    @Test func aSQL92FilterLetsOnlyMatchingMessagesThroughAPull() async throws {
        try await withDevBroker { _, configuration in
            let topic = unique("pull-sql")
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            let consumer = try await PullConsumer.start(
                configuration: configuration, group: unique("g"), topic: topic, filter: .sql92("n >= 20 AND n < 23"), startFrom: .end)
            for index in 0..<25 { _ = try await producer.send(Message(topic: topic, body: Array("m\(index)".utf8), properties: ["n": "\(index)"])) }
            await producer.shutdown()
            let pulled = try await pullAll(consumer, count: 3)
            let nothing = try await consumer.pull(maxMessages: 32, awaitDuration: .milliseconds(100))
            await consumer.shutdown()
            #expect(pulled.map(\.text).sorted() == ["m20", "m21", "m22"])
            #expect(nothing.isEmpty)
        }
    }

    @Test func seekMovesPositionsByTimestampAndOffset() async throws {
        try await withDevBroker { _, configuration in
            let topic = unique("seek")
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            for index in 0..<5 { _ = try await producer.send(Message(topic: topic, body: Array("old\(index)".utf8))) }
            try await Task.sleep(for: .milliseconds(1100))
            let middle = Date()
            try await Task.sleep(for: .milliseconds(50))
            for index in 0..<5 { _ = try await producer.send(Message(topic: topic, body: Array("new\(index)".utf8))) }
            await producer.shutdown()

            let consumer = try await PullConsumer.start(configuration: configuration, group: unique("g"), topic: topic, startFrom: .beginning)
            #expect(try await pullAll(consumer, count: 10).count == 10)
            try await consumer.seek(toTimestamp: middle)
            let recent = try await pullAll(consumer, count: 5)
            #expect(Set(recent.map(\.text)) == Set((0..<5).map { "new\($0)" }))

            let sample = try #require(recent.first)
            let queue = MessageQueueID(topic: topic, brokerName: sample.brokerName, queueId: sample.queueId)
            try await consumer.seek(toOffset: sample.queueOffset, in: queue)
            let replay = try await consumer.pull(maxMessages: 1, awaitDuration: .milliseconds(100))
            #expect(replay.map(\.messageId) == [sample.messageId])
            await consumer.shutdown()
        }
    }

    @Test func positionsInTheOffsetFileSurviveARestartOfTheConsumer() async throws {
        try await withDevBroker { _, configuration in
            let directory = try TemporaryDirectory("offsets")
            defer { directory.remove() }
            let file = URL(fileURLWithPath: directory.file("positions.json"))
            let topic = unique("resume")
            let group = unique("g")
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            for index in 0..<6 { _ = try await producer.send(Message(topic: topic, body: Array("r\(index)".utf8))) }
            var consumer = try await PullConsumer.start(
                configuration: configuration, group: group, topic: topic, startFrom: .beginning, offsetFile: file)
            #expect(try await pullAll(consumer, count: 6).count == 6)
            await consumer.shutdown()
            for index in 6..<9 { _ = try await producer.send(Message(topic: topic, body: Array("r\(index)".utf8))) }
            await producer.shutdown()
            consumer = try await PullConsumer.start(
                configuration: configuration, group: group, topic: topic, startFrom: .beginning, offsetFile: file)
            let resumed = try await pullAll(consumer, count: 3)
            await consumer.shutdown()
            #expect(Set(resumed.map(\.text)) == ["r6", "r7", "r8"])
        }
    }

    @Test func aLongPollWakesAsSoonAsAnyQueueGetsAMessage() async throws {
        try await withDevBroker { _, configuration in
            let topic = unique("wake")
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            let consumer = try await PullConsumer.start(configuration: configuration, group: unique("g"), topic: topic, startFrom: .end)
            let send = Task {
                try await Task.sleep(for: .milliseconds(300))
                _ = try await producer.send(Message(topic: topic, body: Array("wake".utf8)))
            }
            let started = ContinuousClock.now
            let pulled = try await consumer.pull(maxMessages: 8, awaitDuration: .seconds(8))
            let elapsed = ContinuousClock.now - started
            try await send.value
            await consumer.shutdown()
            await producer.shutdown()
            #expect(pulled.map(\.text) == ["wake"])
            #expect(elapsed < .seconds(4), "the long poll returned after \(elapsed)")
        }
    }
}
