import Foundation
import RocketMQNameServer
import RocketMQStore

/// Recalling delay messages (`RecallMessage`): a message recalled before it is due is never
/// handed to a pop consumer group (pull consumers read queues as stored: see the README); the
/// record stays in the log (it is append-only) and retention removes it with its segment.
extension Broker {
    /// The config-directory file of recalled messages (a slave copies it).
    static let recalledMessagesFile = "recalledMessages.json"
    /// How long before its delivery time a message can no longer be recalled.
    static let recallMarginMilliseconds: Int64 = 1000

    /// Recalls the delay message `handle` names, which must belong to `topic` on this broker and
    /// not be due yet. Recalling it again is no error. Returns the message's id.
    /// - Throws: `.notMaster` on a slave, `.badRequest` for another broker's handle or topic,
    ///   `.notFound` when the message is not stored here or is already due (it may have
    ///   been delivered: too late to recall).
    func recall(topic: String, handle: RecallHandle) throws(BrokerError) -> String {
        try requireMaster()
        let configuration = self.configuration
        guard handle.brokerName == configuration.brokerName else {
            throw .badRequest("the recall handle names broker \(handle.brokerName), this is \(configuration.brokerName): recall through a NameServer endpoint or at that broker")
        }
        // Looked up, never auto-created: a recall names a topic that already holds the message.
        guard topics[topic] != nil else { throw .topicNotFound(topic) }
        let key = RecalledMessage.key(topic: topic, queueId: handle.queueId, offset: handle.offset)
        if recalled[key]?.messageId == handle.messageId { return handle.messageId }
        let notFound = BrokerError.notFound("no delay message \(handle.messageId) at offset \(handle.offset) of queue \(handle.queueId) of topic \(topic) on broker \(configuration.brokerName) (removed by retention, or a handle of another topic)")
        let found: StoredMessage?
        do {
            found = try store.messages(topic: topic, queueId: handle.queueId, from: handle.offset, maxCount: 1).messages.first
        } catch {
            throw BrokerError(error)
        }
        guard let stored = found, stored.queueOffset == handle.offset, stored.messageId == handle.messageId, let due = stored.deliveryTime else {
            throw notFound
        }
        // Entries whose message retention removed are dropped as the table changes (looked up
        // first: between the check below and the entry's insertion, nothing may take long).
        let removed = recalled.all.filter { $0.offset < store.minOffset(topic: $0.topic, queueId: $0.queueId) }
        // A receive that reads the message once it is due checks the table; the margin keeps
        // such a receive from passing between this check and the insertion, so that no recall
        // is answered OK for a message a consumer got.
        let now = MessageStore.nowMilliseconds()
        guard due - now > Self.recallMarginMilliseconds else {
            throw .notFound(
                due > now
                    ? "delay message \(handle.messageId) is due in \(due - now) ms, too late to recall it (recalls end \(Self.recallMarginMilliseconds) ms before)"
                    : "delay message \(handle.messageId) was due \(now - due) ms ago and may have been delivered: too late to recall it")
        }
        do {
            try recalled.change { entries in
                for gone in removed { entries[gone.key] = nil }
                entries[key] = RecalledMessage(topic: topic, queueId: handle.queueId, offset: handle.offset, messageId: handle.messageId, deliveryTime: due)
                return true
            }
        } catch {
            throw .storage("cannot record the recall of \(handle.messageId): \(error)")
        }
        logger.info("delay message recalled", metadata: [
            "topic": "\(topic)", "queue": "\(handle.queueId)", "offset": "\(handle.offset)", "messageId": "\(handle.messageId)",
        ])
        return handle.messageId
    }
}

/// A delay message recalled before it was due: consumers never get it. Persisted in
/// `<data>/config/recalledMessages.json` (and copied to slaves) until retention removes the message.
public struct RecalledMessage: Codable, Sendable, Equatable {
    public var topic: String
    public var queueId: Int32
    public var offset: Int64
    public var messageId: String
    /// When it would have been due (ms since the epoch).
    public var deliveryTime: Int64

    /// The table's key for the message at `offset` of `topic`'s queue `queueId`.
    static func key(topic: String, queueId: Int32, offset: Int64) -> String { "\(topic)@\(queueId)@\(offset)" }

    var key: String { Self.key(topic: topic, queueId: queueId, offset: offset) }
}
