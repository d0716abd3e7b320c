import Foundation

/// A message as a consumer receives it.
public struct ReceivedMessage: Sendable, Hashable {
    /// The topic (without namespace).
    public var topic: String
    /// The id the producer gave the message.
    public var messageId: String
    /// The payload, already decompressed when the producer sent it gzip-encoded.
    public var body: [UInt8]
    /// The tag, if the producer set one.
    public var tag: String?
    /// Business keys.
    public var keys: [String]
    /// User properties.
    public var properties: [String: String]
    /// The FIFO message group, if any.
    public var messageGroup: String?
    /// When a delay message became deliverable.
    public var deliveryTimestamp: Date?
    /// When the producer created the message.
    public var bornTimestamp: Date?
    /// 1 on the first delivery, incremented by each redelivery.
    public var deliveryAttempt: Int32
    /// The queue the message is stored in.
    public var queueId: Int32
    /// Its offset in that queue.
    public var queueOffset: Int64
    /// The handle that acks or hides this delivery; renewed by
    /// ``SimpleConsumer/changeInvisibleDuration(_:to:)``. `nil` for pulled messages.
    public var receiptHandle: String?
    /// The broker that delivered the message (acks go back to it).
    public var brokerName: String
    /// The endpoint of that broker.
    public var endpoint: Endpoint
}
