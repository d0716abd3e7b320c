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

    /// Parses a handle this broker issued, byte-wise (every acked message is parsed once).
    /// - Throws: `BrokerError.invalidReceiptHandle` for anything else.
    init(parsing text: String, brokerName: String) throws(BrokerError) {
        var text = text
        text.makeContiguousUTF8()
        let parsed = text.utf8.withContiguousStorageIfAvailable { Self.fields(of: $0, brokerName: brokerName) } ?? .malformed
        switch parsed {
        case .success(let fields):
            self.init(brokerName: brokerName, queueId: fields.queueId, offset: fields.offset, deliveryId: fields.deliveryId, fromRetryTopic: fields.retry)
        case .malformed:
            throw .invalidReceiptHandle("receipt handle \(text.debugDescription) is malformed")
        case .foreign(let owner):
            throw .invalidReceiptHandle("receipt handle \(text.debugDescription) was issued by broker \(owner), not \(brokerName)")
        }
    }

    private enum Parsed {
        case success((queueId: Int32, offset: Int64, deliveryId: UInt64, retry: Bool))
        case malformed
        case foreign(String)
    }

    /// `<broker name>:[R]<queue id>:<offset>:<delivery id, hex>`; the broker name may hold colons.
    private static func fields(of bytes: UnsafeBufferPointer<UInt8>, brokerName: String) -> Parsed {
        // The last three colons, last first.
        var ends = (0, 0, 0)
        var found = 0
        var index = bytes.count
        while index > 0, found < 3 {
            index -= 1
            guard bytes[index] == UInt8(ascii: ":") else { continue }
            switch found {
            case 0: ends.0 = index
            case 1: ends.1 = index
            default: ends.2 = index
            }
            found += 1
        }
        guard found == 3 else { return .malformed }
        var queueField = bytes[(ends.2 + 1)..<ends.1]
        let retry = queueField.first == UInt8(ascii: "R")
        if retry { queueField = queueField.dropFirst() }
        guard let queue = decimal(queueField), queue <= Int64(Int32.max),
              let offset = decimal(bytes[(ends.1 + 1)..<ends.0]),
              let deliveryId = hexadecimal(bytes[(ends.0 + 1)...])
        else { return .malformed }
        let owner = bytes[..<ends.2]
        guard owner.elementsEqual(brokerName.utf8) else { return .foreign(String(decoding: owner, as: UTF8.self)) }
        return .success((Int32(queue), offset, deliveryId, retry))
    }

    /// A non-negative decimal of 1...18 digits (no sign, no spaces).
    private static func decimal(_ digits: Slice<UnsafeBufferPointer<UInt8>>) -> Int64? {
        guard !digits.isEmpty, digits.count <= 18 else { return nil }
        var value: Int64 = 0
        for byte in digits {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int64(byte - UInt8(ascii: "0"))
        }
        return value
    }

    /// A hexadecimal of 1...16 digits, either case.
    private static func hexadecimal(_ digits: Slice<UnsafeBufferPointer<UInt8>>) -> UInt64? {
        guard !digits.isEmpty, digits.count <= 16 else { return nil }
        var value: UInt64 = 0
        for byte in digits {
            let nibble: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): nibble = byte - UInt8(ascii: "A") + 10
            default: return nil
            }
            value = value << 4 | UInt64(nibble)
        }
        return value
    }
}
