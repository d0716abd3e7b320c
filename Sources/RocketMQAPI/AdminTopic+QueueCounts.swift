extension Rocketmq_Admin_V1_Topic {
    /// The read and write queue counts: 0 on the wire means the queue count (a broker that
    /// predates them answers 0).
    public var readQueues: Int32 { readQueueCount == 0 ? queueCount : readQueueCount }
    public var writeQueues: Int32 { writeQueueCount == 0 ? queueCount : writeQueueCount }
}
