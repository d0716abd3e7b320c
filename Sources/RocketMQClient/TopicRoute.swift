/// The message queues of one topic, as the NameServer (or a broker) answered `QueryRoute`.
public struct TopicRoute: Sendable {
    /// The topic.
    public let topic: String
    /// Every queue, on every broker, in the order the server gave.
    public let queues: [Apache_Rocketmq_V2_MessageQueue]
    /// Queues producers may append to (writable, with an address), ordered by broker name and
    /// queue id: the order queue selection walks, whatever order the server gave.
    public let writableQueues: [Apache_Rocketmq_V2_MessageQueue]
    /// The broker address of each of `writableQueues`, at the same index. Worked out once per
    /// route, not on every send: each one reads through the queue's nested messages.
    let writableEndpoints: [Endpoint]

    public init(topic: String, queues: [Apache_Rocketmq_V2_MessageQueue]) {
        self.topic = topic
        self.queues = queues
        let writable = queues.compactMap { queue in queue.isWritable ? queue.endpoint.map { (queue, $0) } : nil }
            .sorted { ($0.0.brokerName, $0.0.id) < ($1.0.brokerName, $1.0.id) }
        writableQueues = writable.map(\.0)
        writableEndpoints = writable.map(\.1)
    }

    /// Whether `endpoint` still takes writes for this topic, but no longer in `queue`: a send
    /// there was refused because the route it chose the queue from was older than the topic's
    /// write queue count, not because the broker takes no writes.
    func droppedWrites(to queue: Apache_Rocketmq_V2_MessageQueue, at endpoint: Endpoint) -> Bool {
        var brokerWritable = false
        for (candidate, at) in zip(writableQueues, writableEndpoints) where at == endpoint {
            if candidate.id == queue.id { return false }
            brokerWritable = true
        }
        return brokerWritable
    }

    /// Queues consumers may read.
    public var readableQueues: [Apache_Rocketmq_V2_MessageQueue] { queues.filter { $0.isReadable && $0.endpoint != nil } }
    /// Every broker endpoint the route names.
    public var endpoints: Set<Endpoint> { Set(queues.compactMap(\.endpoint)) }
}
