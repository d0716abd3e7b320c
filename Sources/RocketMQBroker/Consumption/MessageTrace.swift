import RocketMQStore

/// The life of one message on this broker, built from what the broker records anyway: the
/// stored copies (the original, and the copies a group's retry or dead-letter topic got, which
/// keep its id) and the consumer-progress journal, whose events say which group got which queue
/// offset, which attempt, when it was acknowledged (or moved to its dead-letter queue), and where
/// offsets were committed or reset.
/// No trace topic, no extra write per message: a trace costs a journal scan from the message's
/// store time on, bounded by `journalLimit` records. A group's filter passing over a message is
/// not journaled (replay filters again), so it leaves no event.
public struct MessageTrace: Sendable {
    public struct Event: Sendable, Equatable {
        public enum Kind: Sendable, Equatable {
            case stored, delivered, acked, offsetPassed, offsetReset, deadLettered
        }

        /// Milliseconds since the epoch: the copy's store time, or when the journal record
        /// holding the event was stored.
        public var time: Int64
        public var kind: Kind
        /// Nil for `.stored`.
        public var group: String?
        public var topic: String
        public var queueId: Int32
        public var queueOffset: Int64
        /// For `.delivered`: the delivery attempt, from 1.
        public var attempt: Int32 = 0
    }

    /// Oldest first.
    public var copies: [StoredMessage]
    /// Oldest first.
    public var events: [Event]
    public var journalRecordsScanned: Int
    /// The journal scan stopped at its limit: later events may be missing.
    public var truncated: Bool
}

extension Broker {
    /// Most copies of one message a trace follows (the original plus retry and dead-letter
    /// copies); past it, the newest ones (a message resent more often than that is unusual).
    static let traceCopyLimit = 64

    /// The trace of the message whose producer id or offset id is `messageId`; nil if no stored
    /// message has it.
    public func trace(messageId: String, journalLimit: Int = 100_000) throws(BrokerError) -> MessageTrace? {
        var copies = store.messages(uniqueId: messageId, maxCount: Self.traceCopyLimit)
        if copies.isEmpty, let byOffset = try? store.message(msgId: messageId) {
            // An offset id names one record; its producer id, if it has one, finds its copies too.
            let sameId = byOffset.uniqueId.map { store.messages(uniqueId: $0, maxCount: Self.traceCopyLimit) } ?? []
            copies = sameId.isEmpty ? [byOffset] : sameId
        }
        guard !copies.isEmpty else { return nil }
        copies.sort { $0.physicalOffset < $1.physicalOffset }

        var events = copies.map {
            MessageTrace.Event(time: $0.storeTimestamp, kind: .stored, topic: $0.topic, queueId: $0.queueId, queueOffset: $0.queueOffset)
        }
        struct Position: Hashable {
            var topic: String
            var queueId: Int32
        }
        var offsets: [Position: [Int64]] = [:]
        for copy in copies { offsets[Position(topic: copy.topic, queueId: copy.queueId), default: []].append(copy.queueOffset) }
        // Per group and copy: whether the group is past it (acknowledged, or its offset beyond).
        struct Reach: Hashable {
            var group: String
            var topic: String
            var queueId: Int32
            var offset: Int64
        }
        var passed = Set<Reach>()

        // Journal events about a copy are recorded after it was stored; a second of slack covers
        // store times of the same millisecond taken on different threads.
        let journal = ConsumerJournal(store: store)
        let earliest = copies.map(\.storeTimestamp).min() ?? 0
        let start: Int64
        do {
            start = try store.queueOffset(topic: SystemTopic.consumerJournal, queueId: ConsumerJournal.queueId, forTimestamp: earliest - 1000)
        } catch {
            throw BrokerError(error)
        }
        let scan = try journal.scan(from: start, limit: journalLimit) { record, recorded in
            for event in recorded {
                let key: ProgressKey
                switch event {
                case .delivered(let k, _, _), .acked(let k, _), .committed(let k, _, _): key = k
                }
                guard !key.group.hasPrefix("%"), let candidates = offsets[Position(topic: key.topic, queueId: key.queueId)] else { continue }
                for offset in candidates {
                    let reach = Reach(group: key.group, topic: key.topic, queueId: key.queueId, offset: offset)
                    var traced = MessageTrace.Event(
                        time: record.storeTimestamp, kind: .stored, group: key.group, topic: key.topic, queueId: key.queueId, queueOffset: offset)
                    switch event {
                    case .delivered(_, let at, let attempt) where at == offset:
                        traced.kind = .delivered
                        traced.attempt = attempt
                    case .acked(_, let at) where at == offset:
                        passed.insert(reach)
                        traced.kind = .acked
                    case .committed(_, let to, _) where to > offset && !passed.contains(reach):
                        passed.insert(reach)
                        traced.kind = .offsetPassed
                    case .committed(_, let to, _) where to <= offset && passed.contains(reach):
                        passed.remove(reach)
                        traced.kind = .offsetReset
                    default:
                        continue
                    }
                    events.append(traced)
                }
            }
        }
        // Stable: events of one journal record keep their order.
        var ordered = events.enumerated().sorted { ($0.element.time, $0.offset) < ($1.element.time, $1.offset) }.map(\.element)
        Self.markDeadLetterMoves(in: &ordered, copies: copies)
        return MessageTrace(copies: copies, events: ordered, journalRecordsScanned: scan.scanned, truncated: scan.truncated)
    }

    /// The journal records a move to a group's dead-letter queue as the group's ack, written
    /// after the dead-letter copy was stored: for each such copy, the group's first ack from
    /// its store time on (a second of slack, as above) was that move.
    private static func markDeadLetterMoves(in events: inout [MessageTrace.Event], copies: [StoredMessage]) {
        for copy in copies {
            guard let group = SystemTopic.deadLetterGroup(of: copy.topic) else { continue }
            if let index = events.firstIndex(where: {
                $0.kind == .acked && $0.group == group && $0.topic != copy.topic && $0.time >= copy.storeTimestamp - 1000
            }) {
                events[index].kind = .deadLettered
            }
        }
    }
}
