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
