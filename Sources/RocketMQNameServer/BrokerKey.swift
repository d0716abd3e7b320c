/// What identifies a broker in a NameServer: its group's name and its id in the group (0 = master).
public struct BrokerKey: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var brokerName: String
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
