import Foundation
import RocketMQClient
import Testing

/// The README's and the module documentation's examples, run against a real broker. They differ
/// from the documented text only in the endpoint, unique topic and group names, and the `seen`
/// bookkeeping that checks the outcome.
@Suite struct DocumentationExampleTests {
    @Test func theProducerAndConsumerExamplesRunAsDocumented() async throws {
        try await withDevBroker { broker, _ in
            let endpoint = broker.endpoint
            let topic = unique("orders")
            let group = unique("billing")

            // Producer example
            let configuration = try ClientConfiguration(endpoints: endpoint)
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            var message = Message(topic: topic, body: Array("hello".utf8))
            message.tag = "new"
            message.keys = ["order-1"]
            message.properties["region"] = "eu"
            let receipt = try await producer.send(message)
            print(receipt.messageId, receipt.queueId, receipt.offset)
            await producer.shutdown()

            // Consumer example
            let consumer = try await SimpleConsumer.start(
                configuration: configuration, group: group,
                subscriptions: [topic: FilterExpression.tags("new || paid")])
            var seen: [String] = []
            for message in try await consumer.receive(maxMessages: 16, invisibleDuration: .seconds(30)) {
                print(String(decoding: message.body, as: UTF8.self))
                try await consumer.ack(message)
                seen.append(message.messageId)
            }
            await consumer.shutdown()
            #expect(seen == [receipt.messageId])
        }
    }
}
