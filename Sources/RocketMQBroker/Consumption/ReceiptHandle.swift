/// Names one delivery of one message: which queue and offset, and which delivery (a fresh id
/// per receive or invisible-duration change, so a stale handle cannot ack a newer delivery).
///
/// Opaque to clients; printable so it travels in protobuf strings: `broker:queue:offset:delivery`.
struct ReceiptHandle: Equatable, Sendable, CustomStringConvertible {
    var brokerName: String
    var queueId: Int32
    var offset: Int64
    var deliveryId: UInt64

    var description: String { "\(brokerName):\(queueId):\(offset):\(String(deliveryId, radix: 16))" }

    init(brokerName: String, queueId: Int32, offset: Int64, deliveryId: UInt64) {
        self.brokerName = brokerName
        self.queueId = queueId
        self.offset = offset
        self.deliveryId = deliveryId
    }

    /// Parses a handle this broker issued.
    /// - Throws: `BrokerError.invalidReceiptHandle` for anything else.
    init(parsing text: String, brokerName: String) throws(BrokerError) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count >= 4,
              let queueId = Int32(parts[parts.count - 3]), queueId >= 0,
              let offset = Int64(parts[parts.count - 2]), offset >= 0,
              let deliveryId = UInt64(parts[parts.count - 1], radix: 16)
        else { throw .invalidReceiptHandle("receipt handle \(text.debugDescription) is malformed") }
        let owner = parts.dropLast(3).joined(separator: ":")
        guard owner == brokerName else {
            throw .invalidReceiptHandle("receipt handle \(text.debugDescription) was issued by broker \(owner), not \(brokerName)")
        }
        self.init(brokerName: owner, queueId: queueId, offset: offset, deliveryId: deliveryId)
    }
}
