/// One `ReceiveMessage` long poll: the shared path of ``SimpleConsumer`` and ``PushConsumer``.
struct ReceiveCall: Sendable {
    let session: ClientSession
    let group: String
    let filter: FilterExpression

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
        request.autoRenew = false
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
        var received: [ReceivedMessage] = []
        for message in messages { received.append(try ReceivedMessage(message, queue: queue, endpoint: endpoint)) }
        return received
    }
}
