import RocketMQAPI

/// RocketMQ's topic permission bits, as brokers register them: `2` writable, `4` readable, `6` both.
///
/// The numbers are RocketMQ's (`PermName`), so operators moving from the Java stack read the same
/// values; ``queuePermission`` is what clients see in a route (`apache.rocketmq.v2.Permission`).
public struct TopicPermission: OptionSet, Sendable, Hashable, CustomStringConvertible {
    /// The bits, as RocketMQ writes them (`PermName`).
    public let rawValue: Int32

    /// Any bits; those other than read and write are kept but mean nothing here.
    public init(rawValue: Int32) {
        self.rawValue = rawValue
    }

    /// Producers may send to the topic's queues (bit value 2).
    public static let write = TopicPermission(rawValue: 2)
    /// Consumers may read the topic's queues (bit value 4).
    public static let read = TopicPermission(rawValue: 4)
    /// Both (value 6), the default for a new topic.
    public static let readWrite: TopicPermission = [.read, .write]

    /// The permission a client sees on each of the topic's queues.
    public var queuePermission: Apache_Rocketmq_V2_Permission {
        switch (contains(.read), contains(.write)) {
        case (true, true): return .readWrite
        case (true, false): return .read
        case (false, true): return .write
        case (false, false): return .none
        }
    }

    public var description: String {
        (contains(.read) ? "R" : "-") + (contains(.write) ? "W" : "-")
    }
}
