/// Names one queue of a topic on one broker.
public struct MessageQueueID: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The topic.
    public var topic: String
    /// The broker holding the queue.
    public var brokerName: String
    /// The queue number on that broker.
    public var queueId: Int32

    /// Names queue `queueId` of `topic` on `brokerName`.
    public init(topic: String, brokerName: String, queueId: Int32) {
        self.topic = topic
        self.brokerName = brokerName
        self.queueId = queueId
    }

    /// `topic@broker/queue`, also the key in offset files.
    public var description: String { "\(topic)@\(brokerName)/\(queueId)" }
}
