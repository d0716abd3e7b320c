import Foundation
import RocketMQAPI
import Synchronization

/// The clients the broker has heard from: their type, group and latest settings, and when.
/// Thread-safe.
final class ClientRegistry: Sendable {
    struct Client: Sendable {
        var clientId: String
        var type: Apache_Rocketmq_V2_ClientType
        var group: String?
        var settings: Apache_Rocketmq_V2_Settings?
        var language: String?
        var lastSeen: Date
        /// The open telemetry stream, for commands the broker starts (check-backs).
        var telemetry: Telemetry? = nil
        /// Topics the client sent half messages to, whether or not its settings list them: the
        /// broker checks its transactions back there too.
        var transactionTopics: Set<String> = []
    }

    /// A client's telemetry stream: what the broker writes to it goes through `outbound`.
    struct Telemetry: Sendable {
        var token: UInt64
        var outbound: AsyncStream<Apache_Rocketmq_V2_TelemetryCommand>.Continuation
    }

    private let clients = Mutex<[String: Client]>([:])
    private let nextToken = Mutex<UInt64>(0)

    /// The type `clientId` declared: in a heartbeat, or in the settings its telemetry stream sent.
    func type(of clientId: String) -> Apache_Rocketmq_V2_ClientType {
        clients.withLock { table in
            guard let client = table[clientId] else { return .unspecified }
            return client.type != .unspecified ? client.type : client.settings?.clientType ?? .unspecified
        }
    }

    func heartbeat(clientId: String, type: Apache_Rocketmq_V2_ClientType, group: String?, language: String?) {
        clients.withLock { table in
            var client = table[clientId] ?? Client(clientId: clientId, type: type, group: group, settings: nil, language: language, lastSeen: Date())
            client.type = type == .unspecified ? client.type : type
            client.group = group ?? client.group
            client.language = language ?? client.language
            client.lastSeen = Date()
            table[clientId] = client
        }
    }

    func updateSettings(clientId: String, settings: Apache_Rocketmq_V2_Settings, group: String?) {
        clients.withLock { table in
            var client = table[clientId] ?? Client(clientId: clientId, type: settings.clientType ?? .unspecified, group: group, settings: nil, language: nil, lastSeen: Date())
            client.settings = settings
            client.group = group ?? client.group
            client.lastSeen = Date()
            table[clientId] = client
        }
    }

    /// Records `clientId`'s telemetry stream (replacing an older one); returns the token that
    /// `closeTelemetry` takes.
    func openTelemetry(clientId: String, outbound: AsyncStream<Apache_Rocketmq_V2_TelemetryCommand>.Continuation) -> UInt64 {
        let token = nextToken.withLock { value -> UInt64 in
            value += 1
            return value
        }
        clients.withLock { table in
            var client = table[clientId] ?? Client(clientId: clientId, type: .unspecified, group: nil, settings: nil, language: nil, lastSeen: Date())
            client.telemetry = Telemetry(token: token, outbound: outbound)
            table[clientId] = client
        }
        return token
    }

    /// Forgets the telemetry stream `token` names, unless a newer one replaced it.
    func closeTelemetry(clientId: String, token: UInt64) {
        clients.withLock { table in
            if table[clientId]?.telemetry?.token == token { table[clientId]?.telemetry = nil }
        }
    }

    /// Notes that `clientId` sent a half message to `topic` (at most 1,024 topics per client are
    /// kept; a client beyond that is still checked back for the topics its settings list).
    /// A client not heard from yet is entered: its first half message can arrive before its
    /// Telemetry stream opens (a producer that listed no topics opens it with the first route).
    func notePublishedTransaction(clientId: String, topic: String) {
        clients.withLock { table in
            var client = table[clientId] ?? Client(clientId: clientId, type: .producer, group: nil, settings: nil, language: nil, lastSeen: Date())
            guard !client.transactionTopics.contains(topic), client.transactionTopics.count < 1024 else { return }
            client.transactionTopics.insert(topic)
            table[clientId] = client
        }
    }

    /// The telemetry streams of producers heard from within `window`, by the topics their
    /// settings say they publish and the topics they sent half messages to.
    func producersByTopic(within window: Duration) -> [String: [Telemetry]] {
        let limit = Date().addingTimeInterval(-window.timeInterval)
        return clients.withLock { table in
            var byTopic: [String: [Telemetry]] = [:]
            for client in table.values {
                guard let telemetry = client.telemetry, client.lastSeen >= limit,
                      case .publishing(let publishing)? = client.settings?.pubSub
                else { continue }
                var topics = client.transactionTopics
                for topic in publishing.topics { topics.insert(topic.name) }
                for topic in topics { byTopic[topic, default: []].append(telemetry) }
            }
            return byTopic
        }
    }

    /// The topics the live consumers of `group` (heard from within `window`) subscribe to, by
    /// their settings: a group consumes them even before it has taken any message.
    func subscribedTopics(group: String, within window: Duration) -> Set<String> {
        let limit = Date().addingTimeInterval(-window.timeInterval)
        return clients.withLock { table in
            var topics = Set<String>()
            for client in table.values where client.group == group && client.lastSeen >= limit {
                guard case .subscription(let subscription)? = client.settings?.pubSub else { continue }
                for entry in subscription.subscriptions { if let name = entry.topic?.name { topics.insert(name) } }
            }
            return topics
        }
    }

    func remove(clientId: String) {
        _ = clients.withLock { $0.removeValue(forKey: clientId) }
    }

    var all: [Client] { clients.withLock { Array($0.values) } }

    /// Whether the client was heard from (heartbeat, settings, receive) within `window`.
    func isAlive(_ clientId: String, within window: Duration) -> Bool {
        guard let seen = clients.withLock({ $0[clientId]?.lastSeen }) else { return false }
        return Date().timeIntervalSince(seen) <= window.timeInterval
    }

    /// Notes activity from a client that may not have heartbeated yet (a receive).
    func touch(_ clientId: String) {
        clients.withLock { table in table[clientId]?.lastSeen = Date() }
    }
}
