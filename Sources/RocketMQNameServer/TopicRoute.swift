import RocketMQAPI

/// One topic as a broker serves it: its queues, who may use them and which message types it takes.
public struct TopicRoute: Sendable, Equatable {
    /// The topic's name.
    public var name: String
    /// Queues `0 ..< queueCount` exist on the broker. Must be at least 1.
    public var queueCount: Int
    /// Whether the topic's queues may be written, read, or both.
    public var permission: TopicPermission
    /// The message types the topic accepts; empty means `[.normal]`.
    public var messageTypes: [Apache_Rocketmq_V2_MessageType]
    /// RocketMQ's read and write queue counts: consumers may read queues `0 ..< readQueues`,
    /// producers write `0 ..< writeQueues` (each within ``permission``). Both are `queueCount`
    /// unless an operator set them apart, say to drain queues before removing them.
    public var readQueues: Int
    public var writeQueues: Int

    /// - Parameters:
    ///   - queueCount: default 8, RocketMQ's default for a new topic.
    ///   - permission: default read-write.
    ///   - messageTypes: default `[.normal]`.
    ///   - readQueues, writeQueues: default `queueCount`.
    public init(
        name: String,
        queueCount: Int = 8,
        permission: TopicPermission = .readWrite,
        messageTypes: [Apache_Rocketmq_V2_MessageType] = [.normal],
        readQueues: Int? = nil,
        writeQueues: Int? = nil
    ) {
        self.name = name
        self.queueCount = queueCount
        self.permission = permission
        self.messageTypes = messageTypes
        self.readQueues = readQueues ?? queueCount
        self.writeQueues = writeQueues ?? queueCount
    }

    /// What clients may do with queue `id`: the topic's permission, less reading past
    /// ``readQueues`` and writing past ``writeQueues``.
    public func permission(ofQueue id: Int) -> TopicPermission {
        var allowed = permission.intersection(.readWrite)
        if id >= readQueues { allowed.remove(.read) }
        if id >= writeQueues { allowed.remove(.write) }
        return allowed
    }

    /// The template topic a broker that auto-creates topics registers (RocketMQ's `TBW102`):
    /// NameServers route unknown topics like it.
    public static let autoCreateTemplate = "TBW102"

    /// Why `name` cannot name a client's topic, or nil when it can: 1-127 characters of
    /// `[A-Za-z0-9%|_-]`, and neither a broker's own topic (`%SYS%…`) nor the template. Brokers
    /// and NameServers answer such a name with ILLEGAL_TOPIC before looking it up, as RocketMQ does.
    public static func nameProblem(_ name: String) -> String? {
        guard !name.isEmpty, name.utf8.count <= 127,
              name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "%|-_".contains($0)) })
        else { return "illegal topic name \(name.debugDescription): 1-127 characters of [A-Za-z0-9%|_-]" }
        guard !name.hasPrefix("%SYS%"), name != autoCreateTemplate else { return "topic \(name) is reserved for the broker" }
        return nil
    }

    /// The message types clients are told the topic accepts (`[.normal]` when none were given).
    public var acceptedMessageTypes: [Apache_Rocketmq_V2_MessageType] {
        messageTypes.isEmpty ? [.normal] : messageTypes
    }
}

// MARK: Wire form (rocketmq.namesrv.v1.TopicRoute)

extension TopicRoute {
    /// Reads the registry protocol's form; out-of-range queue counts are kept for ``BrokerRegistration/validate()`` to reject.
    public init(_ message: Rocketmq_Namesrv_V1_TopicRoute) {
        self.init(
            name: message.name,
            queueCount: Int(message.queueCount),
            permission: TopicPermission(rawValue: message.permission),
            messageTypes: message.messageTypes,
            readQueues: message.readQueueCount == 0 ? nil : Int(message.readQueueCount),
            writeQueues: message.writeQueueCount == 0 ? nil : Int(message.writeQueueCount)
        )
    }

    /// The registry protocol's form (read and write counts left 0 where they are `queueCount`).
    public var message: Rocketmq_Namesrv_V1_TopicRoute {
        Rocketmq_Namesrv_V1_TopicRoute(
            name: name, queueCount: Int32(clamping: queueCount), permission: permission.rawValue, messageTypes: messageTypes,
            readQueueCount: readQueues == queueCount ? 0 : Int32(clamping: readQueues),
            writeQueueCount: writeQueues == queueCount ? 0 : Int32(clamping: writeQueues))
    }
}
