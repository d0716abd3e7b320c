import RocketMQStore

extension Broker {
    /// Where a group stands in one queue: the queue's end, the group's offset (its committed
    /// offset, or the queue's minimum when it never consumed there: those messages are lag too)
    /// and the messages between them. Admin's consumer progress and the lag metric count alike.
    /// An offset below the queue's minimum (retention removed, or the topic was deleted, what
    /// the group had not read) counts from the minimum, where its next receive moves it:
    /// messages no one can read are no lag.
    func standing(topic: String, queueId: Int32, committed: Int64?) -> (brokerOffset: Int64, consumerOffset: Int64, lag: Int64) {
        let range = store.offsetRange(topic: topic, queueId: queueId)
        let offset = max(committed ?? range.lowerBound, range.lowerBound)
        return (range.upperBound, offset, max(0, range.upperBound - offset))
    }
}
