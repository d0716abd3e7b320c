/// What goes wrong in the NameServer's registry, with the context an operator needs.
///
/// Mapped to a gRPC status in one place: `NameServerError+RPC.swift`.
public enum NameServerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A registration (or a heartbeat's topic list) a NameServer cannot route to.
    case invalidRegistration(broker: String, reason: String)
    /// A registration stream whose first message is not a full registration.
    case notRegistered(peer: String)
    /// A registration stream message with neither a registration nor a heartbeat.
    case emptyRequest(peer: String)
    /// No live broker serves the topic.
    case topicNotFound(String)
    /// No such broker is registered.
    case brokerNotFound(BrokerKey)
    /// A master registering while a master of the same broker name with a higher epoch is alive
    /// elsewhere: it was superseded by a promotion.
    case supersededMaster(BrokerKey, epoch: Int64, liveMaster: [String], liveEpoch: Int64)

    public var description: String {
        switch self {
        case .invalidRegistration(let broker, let reason):
            return "invalid registration of broker \(broker): \(reason)"
        case .notRegistered(let peer):
            return "\(peer) sent a heartbeat before registering: the first message of a RegisterBroker stream must be a registration"
        case .emptyRequest(let peer):
            return "\(peer) sent a RegisterBroker message with neither a registration nor a heartbeat"
        case .topicNotFound(let topic):
            return "no live broker serves topic \"\(topic)\""
        case .brokerNotFound(let key):
            return "broker \(key) is not registered"
        case .supersededMaster(let key, let epoch, let live, let liveEpoch):
            return "broker \(key) registers as master with epoch \(epoch), but the master at \(live.joined(separator: ", ")) "
                + "has the higher epoch \(liveEpoch) (it was promoted since): refused; restart this broker as its slave"
        }
    }
}
