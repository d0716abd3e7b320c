import Foundation

/// A message to send.
///
/// `messageGroup` makes it a FIFO message (the broker delivers one group's messages in order);
/// `deliveryTimestamp` makes it a delay message. Setting both is refused by the broker.
public struct Message: Sendable, Hashable {
    /// The topic (without namespace).
    public var topic: String
    /// The payload. Bodies above the producer's compression threshold travel gzip-compressed.
    public var body: [UInt8]
    /// One tag consumers can filter on (`FilterExpression.tags("a || b")`).
    public var tag: String?
    /// Business keys, indexed by the broker.
    public var keys: [String]
    /// User properties; keys must not start with `__`.
    public var properties: [String: String]
    /// FIFO message group: messages of one group are consumed in send order.
    public var messageGroup: String?
    /// Do not deliver before this instant (a delay message).
    public var deliveryTimestamp: Date?

    /// A message; only `topic` and `body` are required.
    public init(
        topic: String, body: [UInt8], tag: String? = nil, keys: [String] = [], properties: [String: String] = [:],
        messageGroup: String? = nil, deliveryTimestamp: Date? = nil
    ) {
        self.topic = topic
        self.body = body
        self.tag = tag
        self.keys = keys
        self.properties = properties
        self.messageGroup = messageGroup
        self.deliveryTimestamp = deliveryTimestamp
    }
}
