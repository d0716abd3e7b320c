import Foundation

/// A broker's part in its broker group (RocketMQ's `brokerRole`).
public enum BrokerRole: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    /// A master that answers sends once its own flush policy holds; slaves catch up behind.
    case asyncMaster = "ASYNC_MASTER"
    /// A master that also waits, per send, until a slave has written the message.
    case syncMaster = "SYNC_MASTER"
    /// A read-only copy of a master: its log grows only by replication.
    case slave = "SLAVE"

    public var isMaster: Bool { self != .slave }
    public var description: String { rawValue }

    /// Parses `ASYNC_MASTER`, `SYNC_MASTER` or `SLAVE` (any case, `-` for `_`).
    public init?(parsing text: String) {
        self.init(rawValue: text.uppercased().replacingOccurrences(of: "-", with: "_"))
    }
}
