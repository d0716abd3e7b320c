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
    }

    private let clients = Mutex<[String: Client]>([:])

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

    func remove(clientId: String) {
        _ = clients.withLock { $0.removeValue(forKey: clientId) }
    }

    var all: [Client] { clients.withLock { Array($0.values) } }

    /// Whether the client was heard from (heartbeat, settings, receive) within `window`.
    func isAlive(_ clientId: String, within window: Duration) -> Bool {
        guard let seen = clients.withLock({ $0[clientId]?.lastSeen }) else { return false }
        let (seconds, attoseconds) = window.components
        return Date().timeIntervalSince(seen) <= Double(seconds) + Double(attoseconds) / 1e18
    }

    /// Notes activity from a client that may not have heartbeated yet (a receive).
    func touch(_ clientId: String) {
        clients.withLock { table in table[clientId]?.lastSeen = Date() }
    }
}
