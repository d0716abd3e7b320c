import RocketMQAPI
import RocketMQNameServer

/// A topic as the broker keeps it: how many queues, who may read and write, which message
/// types it accepts. Persisted in `<data>/config/topics.json`.
public struct TopicConfig: Codable, Sendable, Equatable {
    /// Read/write permission, RocketMQ's perm bits (2 = write, 4 = read, 6 = both).
    public typealias Permission = TopicPermission

    public var name: String
    /// The queues that exist, `0 ..< queueCount`: the larger of the read and write counts.
    public var queueCount: Int32
    public var permission: Permission
    /// Accepted message types by protocol name (`NORMAL`, `FIFO`, `DELAY`, `TRANSACTION`).
    public var messageTypes: [String]
    /// RocketMQ's read and write queue counts when set apart (nil: `queueCount`). Consumers read
    /// queues `0 ..< readQueues`, producers write `0 ..< writeQueues`: an operator shrinking a
    /// topic first lowers the write count, lets consumers drain the queues past it, then lowers
    /// the read count.
    public var readQueueCount: Int32?
    public var writeQueueCount: Int32?

    public init(name: String, queueCount: Int32 = 8, permission: Permission = .readWrite, messageTypes: [String] = ["NORMAL"]) {
        self.name = name
        self.queueCount = queueCount
        self.permission = permission
        self.messageTypes = messageTypes
    }

    /// A topic with `readQueues` read and `writeQueues` write queues: `queueCount` is the larger.
    public init(name: String, readQueues: Int32, writeQueues: Int32, permission: Permission = .readWrite, messageTypes: [String] = ["NORMAL"]) {
        self.init(name: name, queueCount: max(readQueues, writeQueues), permission: permission, messageTypes: messageTypes)
        if readQueues != queueCount { readQueueCount = readQueues }
        if writeQueues != queueCount { writeQueueCount = writeQueues }
    }

    /// Consumers read queues `0 ..< readQueues`.
    public var readQueues: Int32 { readQueueCount ?? queueCount }
    /// Producers write queues `0 ..< writeQueues`.
    public var writeQueues: Int32 { writeQueueCount ?? queueCount }

    /// Where a message meant for queue `id` goes when it is stored later (a due delay message, a
    /// committed transaction): that queue while it takes writes, else a write queue.
    public func writeQueue(for id: Int32) -> Int32 {
        id < writeQueues ? id : id % max(1, writeQueues)
    }

    /// Whether queue `id` may be read: it exists, the topic is readable, and it is below the read count.
    public func isReadable(queue id: Int32) -> Bool { isReadable && id >= 0 && id < readQueues }

    /// Why the read and write counts do not fit `queueCount` (each 1 ... queueCount, the larger
    /// equal to it), or nil.
    public var queueCountProblem: String? {
        guard queueCount > 0, queueCount <= 1024 else { return "topic \(name) needs 1 to 1024 queues, not \(queueCount)" }
        guard (1...queueCount).contains(readQueues), (1...queueCount).contains(writeQueues), max(readQueues, writeQueues) == queueCount else {
            return "topic \(name): \(readQueues) read and \(writeQueues) write queues do not fit \(queueCount) queues (each 1 or more, the larger equal to the queue count)"
        }
        return nil
    }

    /// How the queues read in logs and pages: `8`, or `8 (read 8, write 4)`.
    public var queueSummary: String {
        readQueues == writeQueues ? "\(queueCount)" : "\(queueCount) (read \(readQueues), write \(writeQueues))"
    }

    /// The accepted types as protocol values.
    public var acceptedMessageTypes: [Apache_Rocketmq_V2_MessageType] {
        messageTypes.compactMap { Apache_Rocketmq_V2_MessageType(protoName: $0) }
    }

    public var isReadable: Bool { permission.contains(.read) }
    public var isWritable: Bool { permission.contains(.write) }

    /// What NameServers and routes need of the topic.
    public var route: TopicRoute {
        TopicRoute(
            name: name, queueCount: Int(queueCount), permission: permission, messageTypes: acceptedMessageTypes,
            readQueues: Int(readQueues), writeQueues: Int(writeQueues))
    }

    private enum CodingKeys: String, CodingKey { case name, queueCount, permission, messageTypes, readQueueCount, writeQueueCount }

    /// Reads `topics.json` or a config file's topic. Given read and write counts without a
    /// queue count, the larger is the queue count.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        let read = try container.decodeIfPresent(Int32.self, forKey: .readQueueCount)
        let write = try container.decodeIfPresent(Int32.self, forKey: .writeQueueCount)
        let given = [read, write].compactMap { $0 }.max()
        queueCount = try container.decodeIfPresent(Int32.self, forKey: .queueCount) ?? given ?? 8
        permission = TopicPermission(rawValue: try container.decodeIfPresent(Int32.self, forKey: .permission) ?? 6)
        messageTypes = try container.decodeIfPresent([String].self, forKey: .messageTypes) ?? ["NORMAL"]
        readQueueCount = read == queueCount ? nil : read
        writeQueueCount = write == queueCount ? nil : write
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(queueCount, forKey: .queueCount)
        try container.encode(permission.rawValue, forKey: .permission)
        try container.encode(messageTypes, forKey: .messageTypes)
        try container.encodeIfPresent(readQueueCount, forKey: .readQueueCount)
        try container.encodeIfPresent(writeQueueCount, forKey: .writeQueueCount)
    }
}

/// A consumer group's settings. Persisted in `<data>/config/subscriptionGroups.json`.
public struct GroupConfig: Codable, Sendable, Equatable {
    public var name: String
    /// Deliveries before a message moves to `%DLQ%<group>`.
    public var maxDeliveryAttempts: Int32
    /// One message in flight per message group, in queue order.
    public var fifo: Bool
    /// When false, receives answer FORBIDDEN.
    public var consumeEnabled: Bool

    public init(name: String, maxDeliveryAttempts: Int32 = 16, fifo: Bool = false, consumeEnabled: Bool = true) {
        self.name = name
        self.maxDeliveryAttempts = maxDeliveryAttempts
        self.fifo = fifo
        self.consumeEnabled = consumeEnabled
    }
}

/// Names of the broker's own topics.
public enum SystemTopic {
    /// Where unconsumable messages of a group go after its last delivery attempt.
    public static func deadLetter(group: String) -> String { deadLetterPrefix + group }
    /// The group whose dead-letter queue `topic` is, or nil.
    public static func deadLetterGroup(of topic: String) -> String? {
        topic.hasPrefix(deadLetterPrefix) ? String(topic.dropFirst(deadLetterPrefix.count)) : nil
    }
    private static let deadLetterPrefix = "%DLQ%"
    /// Messages redelivered to one group only (an admin resend or a dead-letter re-drive); the
    /// group receives them along with its topics, under their original topic name.
    public static func retry(group: String) -> String { "%RETRY%" + group }
    public static func isRetry(_ topic: String) -> Bool { topic.hasPrefix("%RETRY%") }
    /// The journal of consumer progress (deliveries, acks, offset changes); see `ConsumerJournal`.
    public static let consumerJournal = "%SYS%CONSUMER_JOURNAL"
    /// Half messages of transactions, and the records of how each ended (`TransactionService`).
    public static let transactionHalf = "%SYS%TRANS_HALF"
    public static let transactionOp = "%SYS%TRANS_OP"
    /// Delay messages waiting for their time, and the records of how each was settled (`DelayService`).
    public static let delaySchedule = "%SYS%TIMER"
    public static let delayOp = "%SYS%TIMER_OP"

    public static func isSystem(_ topic: String) -> Bool { topic.hasPrefix("%SYS%") }
}
