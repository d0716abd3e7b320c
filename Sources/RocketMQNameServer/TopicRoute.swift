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

    /// - Parameters:
    ///   - queueCount: default 8, RocketMQ's default for a new topic.
    ///   - permission: default read-write.
    ///   - messageTypes: default `[.normal]`.
    public init(
        name: String,
        queueCount: Int = 8,
        permission: TopicPermission = .readWrite,
        messageTypes: [Apache_Rocketmq_V2_MessageType] = [.normal]
    ) {
        self.name = name
        self.queueCount = queueCount
        self.permission = permission
        self.messageTypes = messageTypes
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
            messageTypes: message.messageTypes
        )
    }

    /// The registry protocol's form.
    public var message: Rocketmq_Namesrv_V1_TopicRoute {
        Rocketmq_Namesrv_V1_TopicRoute(
            name: name, queueCount: Int32(clamping: queueCount), permission: permission.rawValue, messageTypes: messageTypes)
    }
}
