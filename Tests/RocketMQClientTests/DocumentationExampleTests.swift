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

    @Test func theTransactionExampleRunsAsDocumented() async throws {
        let topic = unique("payments")
        let config = #"{"topics": [{"name": "\#(topic)", "queueCount": 2, "permission": 6, "messageTypes": ["TRANSACTION"]}]}"#
        try await withDevBroker(config: config) { _, configuration in
            let ledger = Ledger()
            let payload = Array("10 EUR".utf8)
            let id = "payment-1"

            // Transaction example
            let producer = try await Producer.start(configuration: configuration, topics: [topic],
                options: ProducerOptions(transactionChecker: { message in
                    // Asked by the broker about a transaction left open (the process died before it ended).
                    await ledger.contains(message.properties["payment"] ?? "") ? .commit : .rollback
                }))
            let transaction = try producer.beginTransaction()
            _ = try await transaction.send(Message(topic: topic, body: payload, properties: ["payment": id]))
            try await ledger.record(id)
            try await transaction.commit()

            let consumer = try await SimpleConsumer.start(
                configuration: configuration, group: unique("billing"), subscriptions: [topic: .all], awaitDuration: .milliseconds(500))
            let received = try await receiveAll(consumer, count: 1, timeout: .seconds(10))
            await consumer.shutdown()
            await producer.shutdown()
            #expect(received.map(\.properties["payment"]) == [id])
        }
    }
}

/// The application's own record of what it did, as the transaction example uses it.
private actor Ledger {
    private var ids: Set<String> = []
    func record(_ id: String) throws { ids.insert(id) }
    func contains(_ id: String) -> Bool { ids.contains(id) }
}
