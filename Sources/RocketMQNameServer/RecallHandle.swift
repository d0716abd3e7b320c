import Foundation

/// Names a delay message for `RecallMessage`: which broker, its queue and offset in that broker's
/// schedule (the queue where delay messages wait for their time), when it is due and its id. A
/// broker returns it in the message's `SendResultEntry.recall_handle`; opaque to clients.
/// Here because NameServers read it too: clients send `RecallMessage` to their access point, and
/// a NameServer forwards it to the broker the handle names.
///
/// Printable so it travels in protobuf strings: `recall1:<broker>:<queue>:<offset>:<due ms>:<id>`,
/// with `%` and `:` in the broker name and the id written `%25` and `%3A`, so that any name and
/// any producer-chosen id parse back.
public struct RecallHandle: Equatable, Sendable, CustomStringConvertible {
    static let prefix = "recall1:"

    public var brokerName: String
    public var queueId: Int32
    public var offset: Int64
    /// When the message is due, in ms since the epoch.
    public var deliveryTime: Int64
    public var messageId: String

    public var description: String {
        "\(Self.prefix)\(Self.escaped(brokerName)):\(queueId):\(offset):\(deliveryTime):\(Self.escaped(messageId))"
    }

    private static func escaped(_ text: String) -> String {
        text.replacingOccurrences(of: "%", with: "%25").replacingOccurrences(of: ":", with: "%3A")
    }

    private static func unescaped(_ text: Substring) -> String {
        text.replacingOccurrences(of: "%3A", with: ":").replacingOccurrences(of: "%25", with: "%")
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
        guard fields.count == 5, !fields[0].isEmpty, let queueId = Int32(fields[1]), queueId >= 0,
              let offset = Int64(fields[2]), offset >= 0, let deliveryTime = Int64(fields[3]), !fields[4].isEmpty
        else { return nil }
        self.init(
            brokerName: Self.unescaped(fields[0]), queueId: queueId, offset: offset, deliveryTime: deliveryTime,
            messageId: Self.unescaped(fields[4]))
    }

    /// What a server answers for a `recall_handle` that does not parse.
    public static func invalid(_ text: String) -> String {
        "invalid recall handle \(text.prefix(200).debugDescription): pass the recall_handle a delay message's send returned"
    }
}
