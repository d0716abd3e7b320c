/// What identifies a broker in a NameServer: its group's name and its id in the group (0 = master).
public struct BrokerKey: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The broker group's name, for example `broker-a`.
    public var brokerName: String
    /// `0` for the master, 1, 2, ... for slaves.
    public var brokerId: Int

    public init(brokerName: String, brokerId: Int) {
        self.brokerName = brokerName
        self.brokerId = brokerId
    }

    public static func < (lhs: BrokerKey, rhs: BrokerKey) -> Bool {
        (lhs.brokerName, lhs.brokerId) < (rhs.brokerName, rhs.brokerId)
    }

    public var description: String { "\(brokerName)/\(brokerId)" }
}
