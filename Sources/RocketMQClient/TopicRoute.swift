/// The message queues of one topic, as the NameServer (or a broker) answered `QueryRoute`.
public struct TopicRoute: Sendable {
    /// The topic.
    public let topic: String
    /// Every queue, on every broker, in the order the server gave.
    public let queues: [Apache_Rocketmq_V2_MessageQueue]

    /// Queues producers may append to.
    public var writableQueues: [Apache_Rocketmq_V2_MessageQueue] { queues.filter { $0.isWritable && $0.endpoint != nil } }
    /// Queues consumers may read.
    public var readableQueues: [Apache_Rocketmq_V2_MessageQueue] { queues.filter { $0.isReadable && $0.endpoint != nil } }
    /// Every broker endpoint the route names.
    public var endpoints: Set<Endpoint> { Set(queues.compactMap(\.endpoint)) }
}
