import RocketMQStore

extension Broker {
    /// Where a group stands in one queue: the queue's end, the group's offset (its committed
    /// offset, or the queue's minimum when it never consumed there: those messages are lag too)
    /// and the messages between them. Admin's consumer progress and the lag metric count alike.
    func standing(topic: String, queueId: Int32, committed: Int64?) -> (brokerOffset: Int64, consumerOffset: Int64, lag: Int64) {
        let end = store.maxOffset(topic: topic, queueId: queueId)
        let offset = committed ?? store.minOffset(topic: topic, queueId: queueId)
        return (end, offset, max(0, end - offset))
    }
}
