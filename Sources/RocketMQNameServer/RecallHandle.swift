/// Names a delay message for `RecallMessage`: which broker, queue and offset, when it is due and
/// its id. A broker returns it in the message's `SendResultEntry.recall_handle`; opaque to clients.
/// Here because NameServers read it too: clients send `RecallMessage` to their access point, and
/// a NameServer forwards it to the broker the handle names.
///
/// Printable so it travels in protobuf strings: `recall1:<broker>:<queue>:<offset>:<due ms>:<id>`,
/// read from the right (message ids hold no `:`), so any broker name parses.
public struct RecallHandle: Equatable, Sendable, CustomStringConvertible {
    static let prefix = "recall1:"

    public var brokerName: String
    public var queueId: Int32
    public var offset: Int64
    /// When the message is due, in ms since the epoch.
    public var deliveryTime: Int64
    public var messageId: String

    public var description: String {
        "\(Self.prefix)\(brokerName):\(queueId):\(offset):\(deliveryTime):\(messageId)"
    }

    public init(brokerName: String, queueId: Int32, offset: Int64, deliveryTime: Int64, messageId: String) {
        self.brokerName = brokerName
        self.queueId = queueId
        self.offset = offset
        self.deliveryTime = deliveryTime
        self.messageId = messageId
    }

    /// Nil for text no broker issued.
    public init?(parsing text: String) {
        guard text.hasPrefix(Self.prefix), text.utf8.count <= 1024 else { return nil }
        let fields = text.dropFirst(Self.prefix.count).split(separator: ":", omittingEmptySubsequences: false)
        guard fields.count >= 5 else { return nil }
        let tail = Array(fields.suffix(4))
        let name = fields.dropLast(4).joined(separator: ":")
        guard !name.isEmpty, let queueId = Int32(tail[0]), queueId >= 0, let offset = Int64(tail[1]), offset >= 0,
              let deliveryTime = Int64(tail[2]), !tail[3].isEmpty
        else { return nil }
        self.init(brokerName: name, queueId: queueId, offset: offset, deliveryTime: deliveryTime, messageId: String(tail[3]))
    }

    /// What a server answers for a `recall_handle` that does not parse.
    public static func invalid(_ text: String) -> String {
        "invalid recall handle \(text.prefix(200).debugDescription): pass the recall_handle a delay message's send returned"
    }
}
