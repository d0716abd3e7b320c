/// Names one queue of a topic on one broker.
public struct MessageQueueID: Sendable, Hashable, Codable, CustomStringConvertible {
    public var topic: String
    public var brokerName: String
    public var queueId: Int32

    public init(topic: String, brokerName: String, queueId: Int32) {
        self.topic = topic
        self.brokerName = brokerName
        self.queueId = queueId
    }

    public var description: String { "\(topic)@\(brokerName)/\(queueId)" }
}
