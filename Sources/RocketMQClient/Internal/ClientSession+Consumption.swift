/// Calls on one delivered message, shared by the pop-style consumers.
extension ClientSession {
    /// Acks `message` for `group` at the broker that delivered it.
    nonisolated func ack(_ message: ReceivedMessage, group: String) async throws(RocketMQError) {
        guard let handle = message.receiptHandle else { throw .invalidArgument("message \(message.messageId) has no receipt handle") }
        var request = Apache_Rocketmq_V2_AckMessageRequest()
        request.group = resource(group)
        request.topic = resource(message.topic)
        request.entries = [Apache_Rocketmq_V2_AckMessageEntry(messageId: message.messageId, receiptHandle: handle)]
        let response = try await call(message.endpoint) { [request] client, options in try await client.ackMessage(request, options: options) }
        try RocketMQError.check(response.status)
    }

    /// Hides `message` for `duration` from now; returns the renewed receipt handle.
    nonisolated func changeInvisibleDuration(_ message: ReceivedMessage, group: String, to duration: Duration) async throws(RocketMQError) -> String {
        guard let handle = message.receiptHandle else { throw .invalidArgument("message \(message.messageId) has no receipt handle") }
        var request = Apache_Rocketmq_V2_ChangeInvisibleDurationRequest()
        request.group = resource(group)
        request.topic = resource(message.topic)
        request.receiptHandle = handle
        request.invisibleDuration = Google_Protobuf_Duration(duration)
        request.messageId = message.messageId
        let response = try await call(message.endpoint) { [request] client, options in try await client.changeInvisibleDuration(request, options: options) }
        try RocketMQError.check(response.status)
        return response.receiptHandle
    }

    /// Moves `message` to `%DLQ%<group>` now.
    nonisolated func forwardToDeadLetterQueue(_ message: ReceivedMessage, group: String, maxAttempts: Int32) async throws(RocketMQError) {
        guard let handle = message.receiptHandle else { throw .invalidArgument("message \(message.messageId) has no receipt handle") }
        var request = Apache_Rocketmq_V2_ForwardMessageToDeadLetterQueueRequest()
        request.group = resource(group)
        request.topic = resource(message.topic)
        request.receiptHandle = handle
        request.messageId = message.messageId
        request.deliveryAttempt = message.deliveryAttempt
        request.maxDeliveryAttempts = maxAttempts
        let response = try await call(message.endpoint) { [request] client, options in try await client.forwardMessageToDeadLetterQueue(request, options: options) }
        try RocketMQError.check(response.status)
    }
}
