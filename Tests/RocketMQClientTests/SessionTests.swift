import Foundation
@testable import RocketMQClient
import Testing

@Suite struct SessionTests {
    @Test func theTelemetryHandshakeBringsTheBrokersMergedSettings() async throws {
        let group = unique("settings")
        let config = """
            {"groups": [{"name": "\(group)", "maxDeliveryAttempts": 3, "fifo": false, "consumeEnabled": true}]}
            """
        try await withDevBroker(config: config) { _, configuration in
            let topic = unique("t")
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            let published = producer.session.serverSettings
            await producer.shutdown()
            guard case .publishing(let publishing)? = published?.pubSub else {
                Issue.record("no publishing settings from the broker: \(String(describing: published))")
                return
            }
            #expect(publishing.maxBodySize > 0)
            #expect(publishing.topics.map(\.name) == [topic])

            let consumer = try await SimpleConsumer.start(configuration: configuration, group: group, subscriptions: [topic: .all])
            let subscribed = consumer.session.serverSettings
            await consumer.shutdown()
            #expect(subscribed?.backoffPolicy?.maxAttempts == 3)
            guard case .subscription(let subscription)? = subscribed?.pubSub else {
                Issue.record("no subscription settings from the broker")
                return
            }
            #expect(subscription.longPollingTimeout != nil)
            #expect(subscription.group?.name == group)
        }
    }

    /// A producer announces its own attempts per send, as the official clients do; the broker's
    /// answer echoes them rather than naming attempts of its own.
    @Test func aProducerAnnouncesItsAttemptsPerSend() async throws {
        try await withDevBroker { _, configuration in
            let producer = try await Producer.start(configuration: configuration, topics: [unique("t")], options: ProducerOptions(maxAttempts: 5))
            let announced = producer.session.localSettings.backoffPolicy
            let answered = producer.session.serverSettings?.backoffPolicy
            await producer.shutdown()
            #expect(announced?.maxAttempts == 5)
            #expect(answered?.maxAttempts == 5)
            guard case .exponentialBackoff(let backoff)? = answered?.strategy else {
                Issue.record("no exponential back-off in the answer: \(String(describing: answered))")
                return
            }
            #expect(backoff.initial?.seconds == 0 && backoff.initial?.nanos == 0)
        }
    }

    @Test func cancellingAWaitingReceiveEndsItPromptly() async throws {
        try await withDevBroker { _, configuration in
            let consumer = try await SimpleConsumer.start(
                configuration: configuration, group: unique("g"), subscriptions: [unique("quiet"): .all], awaitDuration: .seconds(20))
            let started = ContinuousClock.now
            let receive = Task { try await consumer.receive(maxMessages: 1, invisibleDuration: .seconds(10)) }
            try await Task.sleep(for: .milliseconds(300))
            receive.cancel()
            let result = await receive.result
            let elapsed = ContinuousClock.now - started
            await consumer.shutdown()
            // Well before the 20 s long poll would end; generous because the suite runs in parallel on two cores.
            #expect(elapsed < .seconds(10), "a cancelled receive took \(elapsed)")
            #expect(throws: RocketMQError.cancelled) { try result.get() }
        }
    }

    @Test func shutdownDrainsOneWaySendsBeforeClosing() async throws {
        try await withDevBroker { _, configuration in
            let topic = unique("drain")
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            for index in 0..<50 { try producer.sendOneway(Message(topic: topic, body: Array("o\(index)".utf8))) }
            await producer.shutdown()
            let consumer = try await SimpleConsumer.start(
                configuration: configuration, group: unique("g"), subscriptions: [topic: .all], awaitDuration: .milliseconds(300))
            let received = try await receiveAll(consumer, count: 50, timeout: .seconds(10))
            await consumer.shutdown()
            #expect(Set(received.map(\.text)).count == 50, "only \(received.count) of 50 one-way sends arrived")
        }
    }
}
