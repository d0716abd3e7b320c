import Logging
import RocketMQAPI

/// One RegisterBroker stream's view of its broker: the registration it made and its token.
///
/// Owned by the stream's handler task (not shared). Re-registers the broker when a heartbeat finds
/// its registration gone (expired or removed by an operator), so a broker that comes back from a
/// pause is routable again without reconnecting.
struct RegistrationSession {
    let routeTable: RouteTable
    let peer: String
    let logger: Logger
    /// Called when a master of a higher epoch replaces this session's master registration.
    let onSuperseded: (@Sendable (NameServerError) -> Void)?
    private(set) var acknowledged: UInt64 = 0
    private var registration: BrokerRegistration?
    private var token: RegistrationToken?

    init(routeTable: RouteTable, peer: String, logger: Logger, onSuperseded: (@Sendable (NameServerError) -> Void)? = nil) {
        self.routeTable = routeTable
        self.peer = peer
        self.logger = logger
        self.onSuperseded = onSuperseded
    }

    /// Applies one message of the stream.
    /// - Returns: whether the broker was registered anew by it.
    mutating func handle(_ request: Rocketmq_Namesrv_V1_RegisterBrokerRequest) throws(NameServerError) -> Bool {
        defer { acknowledged += 1 }
        switch request.content {
        case .registration(let message):
            let next = BrokerRegistration(message)
            let newToken = try routeTable.register(next, onSuperseded: onSuperseded)
            if let token, token.key != newToken.key { routeTable.unregister(token) }
            logger.info(registration == nil ? "broker registered" : "broker registration replaced", metadata: metadata(next))
            registration = next
            token = newToken
            return true
        case .heartbeat(let heartbeat):
            guard var current = registration, let token else { throw .notRegistered(peer: peer) }
            let topics = heartbeat.topics.map { $0.topics.map(TopicRoute.init) }
            if try routeTable.heartbeat(token, topics: topics) {
                if let topics { registration?.topics = topics }
                return false
            }
            if let topics { current.topics = topics }
            self.token = try routeTable.register(current, onSuperseded: onSuperseded)
            registration = current
            logger.notice("broker registered again after it expired or was removed", metadata: metadata(current))
            return true
        case nil:
            throw .emptyRequest(peer: peer)
        }
    }

    /// The stream is over: forget the broker now.
    func end() {
        guard let token, let removed = routeTable.unregister(token) else { return }
        logger.info("broker unregistered: its registration stream ended", metadata: metadata(removed))
    }

    private func metadata(_ registration: BrokerRegistration) -> Logger.Metadata {
        [
            "cluster": "\(registration.clusterName)",
            "broker": "\(registration.key)",
            "endpoints": "\(registration.endpoints.joined(separator: ","))",
            "topics": "\(registration.topics.count)",
            "peer": "\(peer)",
        ]
    }
}
