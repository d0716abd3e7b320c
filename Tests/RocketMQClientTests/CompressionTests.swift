import Foundation
@testable import RocketMQClient
import RocketRPC
import Testing

@Suite struct CompressionTests {
    /// Receives one message with the raw generated stub, so the wire encoding is visible.
    func rawReceive(endpoint: Endpoint, topic: String) async throws -> Apache_Rocketmq_V2_Message? {
        let channel = RPCChannel(configuration: ChannelConfiguration(host: endpoint.host, port: endpoint.port))
        defer { Task { await channel.close() } }
        let client = Apache_Rocketmq_V2_MessagingService.Client(channel: channel)
        var request = Apache_Rocketmq_V2_ReceiveMessageRequest()
        request.group = Apache_Rocketmq_V2_Resource(resourceNamespace: "", name: unique("raw"))
        var queue = Apache_Rocketmq_V2_MessageQueue()
        queue.topic = Apache_Rocketmq_V2_Resource(resourceNamespace: "", name: topic)
        queue.id = -1
        request.messageQueue = queue
        request.filterExpression = FilterExpression.all.proto
        request.batchSize = 1
        request.invisibleDuration = Google_Protobuf_Duration(.seconds(10))
        request.longPollingTimeout = Google_Protobuf_Duration(.seconds(2))
        let metadata = RequestHeaders(clientId: "raw-test", namespace: "", credentials: nil).metadata()
        return try await client.receiveMessage(request, options: CallOptions(timeout: .seconds(5), metadata: metadata)) { responses in
            for try await response in responses {
                if case .message(let message)? = response.content { return message }
            }
            return nil
        }
    }

    @Test func bodiesAboveTheThresholdTravelGzipEncodedAndSmallOnesDoNot() async throws {
        try await withDevBroker { broker, configuration in
            let endpoint = try Endpoint(parsing: broker.endpoint)
            let producer = try await Producer.start(configuration: configuration)
            let bigTopic = unique("big")
            let smallTopic = unique("small")
            let big = Array(String(repeating: "0123456789", count: 1000).utf8)
            _ = try await producer.send(Message(topic: bigTopic, body: big))
            _ = try await producer.send(Message(topic: smallTopic, body: Array("tiny".utf8)))
            await producer.shutdown()

            let bigOnWire = try #require(try await rawReceive(endpoint: endpoint, topic: bigTopic))
            #expect(bigOnWire.systemProperties?.bodyEncoding == .gzip)
            #expect(bigOnWire.body.count < big.count / 5)
            #expect(try Gzip.decompress(bigOnWire.body) == big)
            let smallOnWire = try #require(try await rawReceive(endpoint: endpoint, topic: smallTopic))
            #expect(smallOnWire.systemProperties?.bodyEncoding == .identity)
            #expect(smallOnWire.body == Array("tiny".utf8))
        }
    }

    @Test func aBodyThatIsNotGzipIsDeadLetteredAndTheRestOfItsBatchIsHandled() async throws {
        try await withDevBroker { broker, configuration in
            let endpoint = try Endpoint(parsing: broker.endpoint)
            let topic = unique("corrupt")
            let group = unique("g")
            // A message flagged GZIP whose body is not gzip, sent with the raw stub (the
            // producer would compress it), between two good ones.
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            _ = try await producer.send(Message(topic: topic, body: Array("before".utf8)))
            let channel = RPCChannel(configuration: ChannelConfiguration(host: endpoint.host, port: endpoint.port))
            var corrupt = Apache_Rocketmq_V2_Message()
            corrupt.topic = Apache_Rocketmq_V2_Resource(resourceNamespace: "", name: topic)
            var system = Apache_Rocketmq_V2_SystemProperties()
            system.messageId = "corrupt-\(UUID().uuidString)"
            system.messageType = .normal
            system.bodyEncoding = .gzip
            corrupt.systemProperties = system
            corrupt.body = Array("not gzip at all".utf8)
            let metadata = RequestHeaders(clientId: "raw-test", namespace: "", credentials: nil).metadata()
            let answer = try await Apache_Rocketmq_V2_MessagingService.Client(channel: channel).sendMessage(
                Apache_Rocketmq_V2_SendMessageRequest(messages: [corrupt]), options: CallOptions(timeout: .seconds(5), metadata: metadata))
            await channel.close()
            #expect(answer.status?.code == .ok)
            _ = try await producer.send(Message(topic: topic, body: Array("after".utf8)))
            await producer.shutdown()

            let consumer = try await SimpleConsumer.start(
                configuration: configuration, group: group, subscriptions: [topic: .all], awaitDuration: .milliseconds(500))
            let received = try await receiveAll(consumer, count: 2, timeout: .seconds(10))
            await consumer.shutdown()
            #expect(Set(received.map(\.text)) == ["before", "after"])
            // Read raw: this client would dead-letter it once more.
            let dead = try await rawReceive(endpoint: endpoint, topic: "%DLQ%\(group)")
            #expect(dead?.systemProperties?.messageId == system.messageId)
            #expect(dead?.body == corrupt.body)
        }
    }
}
