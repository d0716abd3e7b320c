import Foundation

/// A message as a consumer receives it.
public struct ReceivedMessage: Sendable, Hashable {
    public var topic: String
    public var messageId: String
    /// The payload, already decompressed when the producer sent it gzip-encoded.
    public var body: [UInt8]
    public var tag: String?
    public var keys: [String]
    public var properties: [String: String]
    public var messageGroup: String?
    public var deliveryTimestamp: Date?
    public var bornTimestamp: Date?
    /// 1 on the first delivery, incremented by each redelivery.
    public var deliveryAttempt: Int32
    public var queueId: Int32
    public var queueOffset: Int64
    /// The handle that acks or hides this delivery; renewed by
    /// ``SimpleConsumer/changeInvisibleDuration(_:to:)``. `nil` for pulled messages.
    public var receiptHandle: String?
    /// The broker that delivered the message (acks go back to it).
    public var brokerName: String
    /// The endpoint of that broker.
    public var endpoint: Endpoint
}
