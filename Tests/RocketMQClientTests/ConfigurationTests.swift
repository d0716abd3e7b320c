import Foundation
import RocketMQClient
import Testing

@Suite struct ConfigurationTests {
    @Test func routesComeFromTheNextEndpointWhenTheFirstIsDown() async throws {
        try await withDevBroker { broker, _ in
            // Port 1 on loopback refuses connections: the client must move on to the broker.
            let configuration = try ClientConfiguration(endpoints: "127.0.0.1:1;\(broker.endpoint)")
            let topic = unique("fallback")
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            let receipt = try await producer.send(Message(topic: topic, body: Array("via the second endpoint".utf8)))
            await producer.shutdown()
            #expect(!receipt.messageId.isEmpty)
        }
    }

    @Test func signedRequestsWithCredentialsAreAccepted() async throws {
        try await withDevBroker { broker, _ in
            let configuration = try ClientConfiguration(
                endpoints: broker.endpoint, namespace: "", credentials: Credentials(accessKey: "ak", accessSecret: "sk"))
            let topic = unique("signed")
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            _ = try await producer.send(Message(topic: topic, body: Array("signed".utf8)))
            await producer.shutdown()
            let consumer = try await SimpleConsumer.start(
                configuration: configuration, group: unique("g"), subscriptions: [topic: .all], awaitDuration: .milliseconds(500))
            let received = try await receiveAll(consumer, count: 1, timeout: .seconds(5))
            await consumer.shutdown()
            #expect(received.map(\.text) == ["signed"])
        }
    }
}
