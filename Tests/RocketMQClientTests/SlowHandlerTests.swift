import Foundation
import RocketMQClient
import Testing

@Suite struct SlowHandlerTests {
    @Test func aHandlerSlowerThanTheInvisibleDurationKeepsItsMessageHidden() async throws {
        try await withDevBroker { _, configuration in
            let topic = unique("slow-handler")
            let group = unique("g")
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            _ = try await producer.send(Message(topic: topic, body: Array("long job".utf8)))
            await producer.shutdown()
            let started = Collector<Int32>()
            let handled = Collector<Int32>()
            let consumer = try await PushConsumer.start(
                configuration: configuration, group: group, subscriptions: [topic: .all],
                options: PushConsumerOptions(invisibleDuration: .seconds(2), longPollingTimeout: .milliseconds(500))
            ) { message in
                started.append(message.deliveryAttempt)
                try? await Task.sleep(for: .milliseconds(4500))
                handled.append(message.deliveryAttempt)
                return .success
            }
            // The push consumer has the message before the other member starts asking: which of
            // two fresh consumers receives first is a race, and not what this test is about.
            #expect(await eventually(timeout: .seconds(10)) { started.count == 1 })
            // Another member of the group would get the message if its invisibility lapsed.
            let other = try await SimpleConsumer.start(
                configuration: configuration, group: group, subscriptions: [topic: .all], awaitDuration: .milliseconds(500))
            var stolen: [ReceivedMessage] = []
            let until = ContinuousClock.now + .seconds(5)
            while ContinuousClock.now < until {
                stolen += try await other.receive(maxMessages: 1, invisibleDuration: .seconds(10))
            }
            let done = await eventually(timeout: .seconds(5)) { handled.count == 1 }
            await other.shutdown()
            await consumer.shutdown()
            #expect(done)
            #expect(stolen.isEmpty, "the message was redelivered while its handler ran")
            #expect(handled.all == [1])
        }
    }
}
