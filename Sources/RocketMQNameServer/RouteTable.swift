import Foundation
import RocketMQAPI
import Synchronization

/// The NameServer's registry: which brokers are alive and what they serve.
///
/// Thread-safe (one mutex; every operation is short and synchronous, so callers on any task or event
/// loop may use it). A broker is alive from ``register(_:now:)`` until ``unregister(_:)``, an operator's
/// ``unregister(_:)-(BrokerKey)``, or until it stays silent for longer than ``brokerExpiry``. Expired
/// brokers are invisible to every read at once and are removed by ``removeExpired(now:)``.
///
/// Times are `ContinuousClock` instants passed in by the caller (defaulting to now), so tests can age
/// the table without sleeping.
public final class RouteTable: Sendable {
    /// How long a broker stays registered without a heartbeat.
    public let brokerExpiry: Duration

    private struct Entry {
        var registration: BrokerRegistration
        var token: RegistrationToken
        var registeredAt: Date
        var lastHeartbeat: Date
        var lastHeard: ContinuousClock.Instant
        /// Told when a master of a higher epoch at other endpoints replaces this one.
        var onSuperseded: (@Sendable (NameServerError) -> Void)?

        /// Whether the broker was heard from within `expiry` of `now`.
        func isAlive(at now: ContinuousClock.Instant, expiry: Duration) -> Bool { now - lastHeard <= expiry }
    }

    private struct State {
        var entries: [BrokerKey: Entry] = [:]
        var nextSerial: UInt64 = 1
    }

    private let state = Mutex(State())

    /// - Parameter brokerExpiry: default 120 s, RocketMQ's.
    public init(brokerExpiry: Duration = .seconds(120)) {
        self.brokerExpiry = brokerExpiry
    }

    // MARK: Writes

    /// Registers a broker, replacing any registration with the same broker name and id, except
    /// that a master is refused while a live master of the same name at other endpoints has a
    /// higher ``BrokerRegistration/masterEpoch`` (a former master back after a promotion; the
    /// promoted one, registering later, replaces a live master of a lower epoch).
    ///
    /// A master replaced so (this NameServer restarted and heard from the former master first)
    /// is told through the `onSuperseded` it registered with, at once, outside the table's lock:
    /// its registration stream ends with the refusal instead of at its next heartbeat.
    /// - Returns: the token for heartbeats and unregistering.
    /// - Throws: ``NameServerError/invalidRegistration(broker:reason:)``,
    ///   ``NameServerError/supersededMaster(_:epoch:liveMaster:liveEpoch:)``.
    @discardableResult
    public func register(
        _ registration: BrokerRegistration, now: ContinuousClock.Instant = .now,
        onSuperseded: (@Sendable (NameServerError) -> Void)? = nil
    ) throws(NameServerError) -> RegistrationToken {
        try registration.validate()
        let wallClock = Date()
        let expiry = brokerExpiry
        let (token, notify) = try state.withLock { (state) throws(NameServerError) -> (RegistrationToken, (() -> Void)?) in
            let previous = state.entries[registration.key]
            if let live = previous, live.isAlive(at: now, expiry: expiry), Self.supersedes(live.registration, registration) {
                throw Self.superseded(registration, by: live.registration)
            }
            let token = RegistrationToken(key: registration.key, serial: state.nextSerial)
            state.nextSerial += 1
            state.entries[registration.key] = Entry(
                registration: registration, token: token, registeredAt: wallClock, lastHeartbeat: wallClock, lastHeard: now,
                onSuperseded: onSuperseded)
            var notify: (() -> Void)?
            if let previous, let tell = previous.onSuperseded, Self.supersedes(registration, previous.registration) {
                let refusal = Self.superseded(previous.registration, by: registration)
                notify = { tell(refusal) }
            }
            return (token, notify)
        }
        notify?()
        return token
    }

    /// Whether master `newer` ranks above master `older` of the same broker name: at other
    /// endpoints (not the same broker restarted) with a higher master epoch.
    private static func supersedes(_ newer: BrokerRegistration, _ older: BrokerRegistration) -> Bool {
        newer.isMaster && older.isMaster && Set(newer.endpoints) != Set(older.endpoints) && newer.masterEpoch > older.masterEpoch
    }

    /// The refusal `former` gets because master `live` supersedes it.
    private static func superseded(_ former: BrokerRegistration, by live: BrokerRegistration) -> NameServerError {
        .supersededMaster(former.key, epoch: former.masterEpoch, liveMaster: live.endpoints, liveEpoch: live.masterEpoch)
    }

    /// Records a heartbeat, optionally replacing the broker's topic list.
    /// - Returns: `false` when the registration is gone (expired, unregistered or replaced by a newer
    ///   one): the caller should register again.
    /// - Throws: ``NameServerError/invalidRegistration(broker:reason:)`` for a bad topic list.
    @discardableResult
    public func heartbeat(_ token: RegistrationToken, topics: [TopicRoute]? = nil, now: ContinuousClock.Instant = .now) throws(NameServerError) -> Bool {
        if let topics { try BrokerRegistration.validate(topics: topics, broker: token.key.description) }
        let expiry = brokerExpiry
        return state.withLock { state in
            guard var entry = state.entries[token.key], entry.token == token else { return false }
            guard entry.isAlive(at: now, expiry: expiry) else {
                state.entries[token.key] = nil
                return false
            }
            entry.lastHeard = max(entry.lastHeard, now)
            entry.lastHeartbeat = Date()
            if let topics { entry.registration.topics = topics }
            state.entries[token.key] = entry
            return true
        }
    }

    /// Removes the registration `token` proves, unless a newer one replaced it.
    /// - Returns: the removed registration, or `nil` when there was nothing to remove.
    @discardableResult
    public func unregister(_ token: RegistrationToken) -> BrokerRegistration? {
        state.withLock { state in
            guard let entry = state.entries[token.key], entry.token == token else { return nil }
            state.entries[token.key] = nil
            return entry.registration
        }
    }

    /// Removes a broker whatever registered it (an operator's action).
    /// - Returns: the removed registration, or `nil` when the broker was not registered.
    @discardableResult
    public func unregister(_ key: BrokerKey) -> BrokerRegistration? {
        state.withLock { $0.entries.removeValue(forKey: key)?.registration }
    }

    /// Removes every broker silent for longer than ``brokerExpiry``.
    /// - Returns: the removed registrations, sorted by broker.
    @discardableResult
    public func removeExpired(now: ContinuousClock.Instant = .now) -> [BrokerRegistration] {
        let expiry = brokerExpiry
        return state.withLock { state in
            let expired = state.entries.values.filter { !$0.isAlive(at: now, expiry: expiry) }
            for entry in expired { state.entries[entry.token.key] = nil }
            return expired.map(\.registration).sorted { $0.key < $1.key }
        }
    }

    // MARK: Reads (expired brokers excluded)

    /// Every live broker, sorted by cluster, broker name, then id.
    public func brokers(now: ContinuousClock.Instant = .now) -> [RegisteredBroker] {
        live(now: now)
            .map { RegisteredBroker(registration: $0.registration, registeredAt: $0.registeredAt, lastHeartbeat: $0.lastHeartbeat) }
            .sorted { ($0.registration.clusterName, $0.registration.key) < ($1.registration.clusterName, $1.registration.key) }
    }

    /// The live brokers that serve `topic` (masters and slaves), sorted by broker name, then id.
    public func brokers(for topic: String, now: ContinuousClock.Instant = .now) -> [BrokerRegistration] {
        live(now: now)
            .map(\.registration)
            .filter { $0.topic(named: topic) != nil }
            .sorted { $0.key < $1.key }
    }

    /// The client route of `topic`, built by ``RouteBuilder/messageQueues(for:namespace:brokers:)``
    /// over every live broker.
    /// - Throws: ``NameServerError/topicNotFound(_:)`` when no live broker serves the topic.
    public func messageQueues(for topic: String, namespace: String = "", now: ContinuousClock.Instant = .now) throws(NameServerError) -> [Apache_Rocketmq_V2_MessageQueue] {
        var brokers = live(now: now).map(\.registration)
        if !brokers.contains(where: { $0.topic(named: topic) != nil }) {
            // RocketMQ's auto-create convention: brokers that create topics on first use
            // register the template topic TBW102; an unknown topic routes like it, and the
            // broker creates the real topic when the first message arrives.
            brokers = brokers.compactMap { broker in
                guard var template = broker.topic(named: TopicRoute.autoCreateTemplate) else { return nil }
                var copy = broker
                template.name = topic
                copy.topics = [template]
                return copy
            }
            guard !brokers.isEmpty else { throw .topicNotFound(topic) }
        }
        return RouteBuilder.messageQueues(for: topic, namespace: namespace, brokers: brokers)
    }

    /// The names of the topics live brokers serve, sorted; only those of `clusterName` when given.
    public func topics(inCluster clusterName: String? = nil, now: ContinuousClock.Instant = .now) -> [String] {
        var names = Set<String>()
        for entry in live(now: now) where clusterName == nil || entry.registration.clusterName == clusterName {
            for topic in entry.registration.topics { names.insert(topic.name) }
        }
        return names.sorted()
    }

    private func live(now: ContinuousClock.Instant) -> [Entry] {
        let expiry = brokerExpiry
        return state.withLock { state in state.entries.values.filter { $0.isAlive(at: now, expiry: expiry) } }
    }
}
