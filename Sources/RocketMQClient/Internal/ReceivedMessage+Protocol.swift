extension ReceivedMessage {
    /// A delivered protocol message, body decompressed.
    init(_ message: Apache_Rocketmq_V2_Message, queue: Apache_Rocketmq_V2_MessageQueue?, endpoint: Endpoint) throws(RocketMQError) {
        let system = message.systemProperties ?? Apache_Rocketmq_V2_SystemProperties()
        let body = system.bodyEncoding == .gzip ? try Gzip.decompress(message.body) : message.body
        self.init(message, body: body, queue: queue, endpoint: endpoint)
    }

    /// `messages` decoded, and apart those whose body cannot be (flagged GZIP, not gzip), with
    /// the reason: one such message must not cost the rest of a batch, already delivered.
    static func decoding(
        _ messages: [Apache_Rocketmq_V2_Message], queue: Apache_Rocketmq_V2_MessageQueue, endpoint: Endpoint
    ) -> (decoded: [ReceivedMessage], undecodable: [(message: Apache_Rocketmq_V2_Message, error: RocketMQError)]) {
        var decoded: [ReceivedMessage] = []
        var undecodable: [(message: Apache_Rocketmq_V2_Message, error: RocketMQError)] = []
        for message in messages {
            do throws(RocketMQError) {
                decoded.append(try ReceivedMessage(message, queue: queue, endpoint: endpoint))
            } catch {
                undecodable.append((message, error))
            }
        }
        return (decoded, undecodable)
    }

    /// A delivered protocol message with its body as it came (for one whose body cannot be
    /// decoded, to settle it by its receipt handle).
    init(undecoded message: Apache_Rocketmq_V2_Message, queue: Apache_Rocketmq_V2_MessageQueue?, endpoint: Endpoint) {
        self.init(message, body: message.body, queue: queue, endpoint: endpoint)
    }

    private init(_ message: Apache_Rocketmq_V2_Message, body: [UInt8], queue: Apache_Rocketmq_V2_MessageQueue?, endpoint: Endpoint) {
        let system = message.systemProperties ?? Apache_Rocketmq_V2_SystemProperties()
        self.init(
            topic: message.topic?.name ?? "", messageId: system.messageId, body: body, tag: system.tag, keys: system.keys,
            properties: message.userProperties, messageGroup: system.messageGroup,
            deliveryTimestamp: system.deliveryTimestamp?.date, bornTimestamp: system.bornTimestamp?.date,
            deliveryAttempt: system.deliveryAttempt ?? 1, queueId: system.queueId, queueOffset: system.queueOffset ?? -1,
            receiptHandle: system.receiptHandle, brokerName: queue?.brokerName ?? "", endpoint: endpoint)
    }
}
