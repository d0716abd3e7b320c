/// RocketMQClient: the Swift client for RocketMQ 5 brokers (`apache.rocketmq.v2` over gRPC).
///
/// It owns the client-side concepts — routes, queue selection, retry with fault avoidance,
/// heartbeats and the Telemetry settings handshake — and offers four clients on top of one
/// ``ClientSession`` each: ``Producer``, ``SimpleConsumer``, ``PushConsumer`` and ``PullConsumer``.
///
/// A producer in ten lines:
///
/// ```swift
/// let configuration = try ClientConfiguration(endpoints: "127.0.0.1:9876")
/// let producer = try await Producer.start(configuration: configuration, topics: ["orders"])
/// var message = Message(topic: "orders", body: Array("hello".utf8))
/// message.tag = "new"
/// message.keys = ["order-1"]
/// message.properties["region"] = "eu"
/// let receipt = try await producer.send(message)
/// print(receipt.messageId, receipt.queueId, receipt.offset)
/// await producer.shutdown()
/// ```
///
/// A consumer in ten lines:
///
/// ```swift
/// let configuration = try ClientConfiguration(endpoints: "127.0.0.1:9876")
/// let consumer = try await SimpleConsumer.start(
///     configuration: configuration, group: "billing",
///     subscriptions: ["orders": FilterExpression.tags("new || paid")])
/// for message in try await consumer.receive(maxMessages: 16, invisibleDuration: .seconds(30)) {
///     print(String(decoding: message.body, as: UTF8.self))
///     try await consumer.ack(message)
/// }
/// await consumer.shutdown()
/// ```
///
/// Both examples run as tests (`DocumentationExampleTests`) against a real broker.
@_exported import RocketMQAPI
