import RocketMQAPI
import RocketMQNameServer

/// A topic as the broker keeps it: how many queues, who may read and write, which message
/// types it accepts. Persisted in `<data>/config/topics.json`.
public struct TopicConfig: Codable, Sendable, Equatable {
    /// Read/write permission, RocketMQ's perm bits (2 = write, 4 = read, 6 = both).
    public typealias Permission = TopicPermission

    public var name: String
    public var queueCount: Int32
    public var permission: Permission
    /// Accepted message types by protocol name (`NORMAL`, `FIFO`, `DELAY`, `TRANSACTION`).
    public var messageTypes: [String]

    public init(name: String, queueCount: Int32 = 8, permission: Permission = .readWrite, messageTypes: [String] = ["NORMAL"]) {
        self.name = name
        self.queueCount = queueCount
        self.permission = permission
        self.messageTypes = messageTypes
    }

    /// The accepted types as protocol values.
    public var acceptedMessageTypes: [Apache_Rocketmq_V2_MessageType] {
        messageTypes.compactMap { Apache_Rocketmq_V2_MessageType(protoName: $0) }
    }

    public var isReadable: Bool { permission.contains(.read) }
    public var isWritable: Bool { permission.contains(.write) }

    /// What NameServers and routes need of the topic.
    public var route: TopicRoute {
        TopicRoute(name: name, queueCount: Int(queueCount), permission: permission, messageTypes: acceptedMessageTypes)
    }

    private enum CodingKeys: String, CodingKey { case name, queueCount, permission, messageTypes }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        queueCount = try container.decodeIfPresent(Int32.self, forKey: .queueCount) ?? 8
        permission = TopicPermission(rawValue: try container.decodeIfPresent(Int32.self, forKey: .permission) ?? 6)
        messageTypes = try container.decodeIfPresent([String].self, forKey: .messageTypes) ?? ["NORMAL"]
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(queueCount, forKey: .queueCount)
        try container.encode(permission.rawValue, forKey: .permission)
        try container.encode(messageTypes, forKey: .messageTypes)
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
