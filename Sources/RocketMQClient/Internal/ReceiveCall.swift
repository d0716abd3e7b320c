/// One `ReceiveMessage` long poll: the shared path of ``SimpleConsumer`` and ``PushConsumer``.
struct ReceiveCall: Sendable {
    let session: ClientSession
    let group: String
    let filter: FilterExpression
    /// Ask the broker to keep the messages hidden while this client is alive (`auto_renew`), as
    /// a push consumer does: its messages may wait in the cache longer than the invisible
    /// duration before a handler takes them. A simple consumer leaves that to its caller.
    var autoRenew = false

    /// Receives up to `batchSize` messages from `queue`'s broker. An empty answer
    /// (`MESSAGE_NOT_FOUND`) is an empty array, not an error.
    func run(
        queue: Apache_Rocketmq_V2_MessageQueue, batchSize: Int, invisibleDuration: Duration, longPolling: Duration
    ) async throws(RocketMQError) -> [ReceivedMessage] {
        guard let endpoint = queue.endpoint else { throw .noQueue(topic: queue.topic?.name ?? "", reason: "the queue has no address") }
        var request = Apache_Rocketmq_V2_ReceiveMessageRequest()
        request.group = session.resource(group)
        request.messageQueue = queue
        request.filterExpression = filter.proto
        request.batchSize = Int32(batchSize)
        request.invisibleDuration = Google_Protobuf_Duration(invisibleDuration)
        request.autoRenew = autoRenew
        request.longPollingTimeout = Google_Protobuf_Duration(longPolling)
        let timeout = session.configuration.requestTimeout + longPolling
        let (status, messages) = try await session.call(endpoint, timeout: timeout) { [request] client, options in
            try await client.receiveMessage(request, options: options) { responses in
                var status: Apache_Rocketmq_V2_Status?
                var messages: [Apache_Rocketmq_V2_Message] = []
                for try await response in responses {
                    switch response.content {
                    case .status(let value)?: status = value
                    case .message(let message)?: messages.append(message)
                    case .deliveryTimestamp?, nil: break
                    }
                }
                return (status, messages)
            }
        }
        if status?.code == .messageNotFound { return [] }
        try RocketMQError.check(status)
        let (received, undecodable) = ReceivedMessage.decoding(messages, queue: queue, endpoint: endpoint)
        // A body that cannot be decoded can never be handled: it goes to the dead-letter queue
        // for an operator, and the rest of the batch, hidden for this consumer, is handed over.
        for (message, error) in undecodable {
            await deadLetter(ReceivedMessage(undecoded: message, queue: queue, endpoint: endpoint), because: error)
        }
        return received
    }

    private func deadLetter(_ message: ReceivedMessage, because error: RocketMQError) async {
        session.logger.error("a received message's body cannot be decoded; forwarding it to the dead-letter queue", metadata: [
            "topic": "\(message.topic)", "message-id": "\(message.messageId)", "error": "\(error)"])
        do throws(RocketMQError) {
            try await session.forwardToDeadLetterQueue(message, group: group, maxAttempts: message.deliveryAttempt)
        } catch {
            session.logger.warning("forwarding an undecodable message failed; it will be delivered again", metadata: [
                "message-id": "\(message.messageId)", "error": "\(error)"])
        }
    }
}
