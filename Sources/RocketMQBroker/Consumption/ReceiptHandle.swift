/// Names one delivery of one message: which queue and offset, and which delivery (a fresh id
/// per receive or invisible-duration change, so a stale handle cannot ack a newer delivery).
///
/// Opaque to clients; printable so it travels in protobuf strings: `broker:queue:offset:delivery`,
/// the queue written `R<id>` for the group's retry topic.
struct ReceiptHandle: Equatable, Sendable, CustomStringConvertible {
    var brokerName: String
    var queueId: Int32
    var offset: Int64
    var deliveryId: UInt64
    /// The delivery came from the group's retry topic, not the topic the client names.
    var fromRetryTopic = false

    var description: String {
        "\(brokerName):\(fromRetryTopic ? "R" : "")\(queueId):\(offset):\(String(deliveryId, radix: 16))"
    }

    init(brokerName: String, queueId: Int32, offset: Int64, deliveryId: UInt64, fromRetryTopic: Bool = false) {
        self.brokerName = brokerName
        self.queueId = queueId
        self.offset = offset
        self.deliveryId = deliveryId
        self.fromRetryTopic = fromRetryTopic
    }

    /// The topic the delivery belongs to, given the one the client names.
    func topic(named clientTopic: String, group: String) -> String {
        fromRetryTopic ? SystemTopic.retry(group: group) : clientTopic
    }

    /// Parses a handle this broker issued.
    /// - Throws: `BrokerError.invalidReceiptHandle` for anything else.
    init(parsing text: String, brokerName: String) throws(BrokerError) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        let queueField = parts.count >= 4 ? parts[parts.count - 3] : ""
        let retry = queueField.hasPrefix("R")
        guard parts.count >= 4,
              let queueId = Int32(retry ? queueField.dropFirst() : queueField), queueId >= 0,
              let offset = Int64(parts[parts.count - 2]), offset >= 0,
              let deliveryId = UInt64(parts[parts.count - 1], radix: 16)
        else { throw .invalidReceiptHandle("receipt handle \(text.debugDescription) is malformed") }
        let owner = parts.dropLast(3).joined(separator: ":")
        guard owner == brokerName else {
            throw .invalidReceiptHandle("receipt handle \(text.debugDescription) was issued by broker \(owner), not \(brokerName)")
        }
        self.init(brokerName: owner, queueId: queueId, offset: offset, deliveryId: deliveryId, fromRetryTopic: retry)
    }
}
