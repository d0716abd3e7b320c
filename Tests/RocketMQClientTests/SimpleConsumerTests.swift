import Foundation
import RocketMQClient
import Testing

@Suite struct SimpleConsumerTests {
    @Test func tagExpressionsSelectOnlyMatchingMessages() async throws {
        try await withDevBroker { _, configuration in
            let topic = unique("tags")
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            for tag in ["a", "b", "c", "a"] { _ = try await producer.send(Message(topic: topic, body: Array(tag.utf8), tag: tag)) }
            await producer.shutdown()
            let consumer = try await SimpleConsumer.start(
                configuration: configuration, group: unique("g"), subscriptions: [topic: .tags("a || b")], awaitDuration: .milliseconds(300))
            let received = try await receiveAll(consumer, count: 3, timeout: .seconds(5))
            let extra = try await consumer.receive(maxMessages: 32, invisibleDuration: .seconds(5))
            await consumer.shutdown()
            #expect(received.compactMap(\.tag).sorted() == ["a", "a", "b"])
            #expect(extra.isEmpty, "a message with tag c passed the filter")
        }
    }

    @Test func sql92ConditionsSelectByPropertiesOnTheBroker() async throws {
        try await withDevBroker { _, configuration in
            let topic = unique("sql")
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            let orders: [(String, [String: String])] = [
                ("eu-150", ["region": "eu", "amount": "150"]), ("eu-50", ["region": "eu", "amount": "50"]),
                ("us-500", ["region": "us", "amount": "500"]), ("apac-900", ["region": "apac", "amount": "900"]),
                ("no-amount", ["region": "eu"]),
            ]
            for (body, properties) in orders {
                _ = try await producer.send(Message(topic: topic, body: Array(body.utf8), tag: "order", properties: properties))
            }
            await producer.shutdown()
            let consumer = try await SimpleConsumer.start(
                configuration: configuration, group: unique("g"),
                subscriptions: [topic: .sql92("amount > 100 AND region IN ('eu', 'apac') AND TAGS = 'order'")],
                awaitDuration: .milliseconds(300))
            let received = try await receiveAll(consumer, count: 2, timeout: .seconds(5))
            let extra = try await consumer.receive(maxMessages: 32, invisibleDuration: .seconds(5))
            await consumer.shutdown()
            #expect(received.map(\.text).sorted() == ["apac-900", "eu-150"])
            #expect(extra.isEmpty, "a message outside the condition passed: \(extra.map(\.text))")
        }
    }

    @Test func aMalformedSQL92ConditionFailsTheConsumersStartAsAnIllegalFilter() async throws {
        try await withDevBroker { _, configuration in
            let topic = unique("sql-bad")
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            await producer.shutdown()
            let started = ContinuousClock.now
            await #expect {
                let consumer = try await SimpleConsumer.start(
                    configuration: configuration, group: unique("g"), subscriptions: [topic: .sql92("amount >")],
                    awaitDuration: .milliseconds(300))
                await consumer.shutdown()
            } throws: { error in
                guard case RocketMQError.status(let code, let message) = error else { return false }
                return code == .illegalFilterExpression && message.contains("at character 9")
            }
            // Refused by the settings handshake, not after waiting out the request timeout for it.
            #expect(ContinuousClock.now - started < configuration.requestTimeout)
        }
    }

    @Test func changeInvisibleDurationRenewsTheHandleAndUnackedMessagesComeBack() async throws {
        try await withDevBroker { _, configuration in
            let topic = unique("invisible")
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            _ = try await producer.send(Message(topic: topic, body: Array("once".utf8)))
            await producer.shutdown()
            let consumer = try await SimpleConsumer.start(
                configuration: configuration, group: unique("g"), subscriptions: [topic: .all], awaitDuration: .seconds(1))
            var first = try #require(try await receiveAll(consumer, count: 1, ack: false).first)
            #expect(first.deliveryAttempt == 1)
            let oldHandle = first.receiptHandle
            try await consumer.changeInvisibleDuration(&first, to: .seconds(1))
            #expect(first.receiptHandle != oldHandle)
            // Not acked: it comes back after about a second, as attempt 2.
            let again = try #require(try await receiveAll(consumer, count: 1, timeout: .seconds(10)).first)
            #expect(again.messageId == first.messageId)
            #expect(again.deliveryAttempt == 2)
            let none = try await consumer.receive(maxMessages: 1, invisibleDuration: .seconds(1))
            await consumer.shutdown()
            #expect(none.isEmpty, "an acked message was delivered again")
        }
    }

    @Test func clusteringConsumersShareTheGroupsMessagesEachHandledOnce() async throws {
        try await withDevBroker { _, configuration in
            let topic = unique("cluster")
            let group = unique("g")
            let total = 60
            let handled = Collector<String>()
            let pushA = try await PushConsumer.start(configuration: configuration, group: group, subscriptions: [topic: .all]) {
                handled.append("push-a:\($0.text)")
                return .success
            }
            let pushB = try await PushConsumer.start(configuration: configuration, group: group, subscriptions: [topic: .all]) {
                handled.append("push-b:\($0.text)")
                return .success
            }
            let simple = try await SimpleConsumer.start(
                configuration: configuration, group: group, subscriptions: [topic: .all], awaitDuration: .milliseconds(200))
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            for index in 0..<total { _ = try await producer.send(Message(topic: topic, body: Array("m\(index)".utf8))) }
            await producer.shutdown()
            let deadline = ContinuousClock.now + .seconds(20)
            while handled.count < total, ContinuousClock.now < deadline {
                for message in try await simple.receive(maxMessages: 4, invisibleDuration: .seconds(30)) {
                    try await simple.ack(message)
                    handled.append("simple:\(message.text)")
                }
            }
            try await Task.sleep(for: .milliseconds(300))  // room for a wrongful second delivery
            await pushA.shutdown()
            await pushB.shutdown()
            await simple.shutdown()
            let bodies = handled.all.map { $0.split(separator: ":").last.map(String.init) ?? "" }
            #expect(bodies.count == total, "each message handled exactly once: \(bodies.count) handlings of \(total)")
            #expect(Set(bodies) == Set((0..<total).map { "m\($0)" }))
            let consumers = Set(handled.all.compactMap { $0.split(separator: ":").first.map(String.init) })
            #expect(consumers.count >= 2, "only \(consumers) consumed")
        }
    }
}
