import Foundation
import RocketMQStore

/// Which group consumes which queue.
struct ProgressKey: Hashable, Codable, Sendable, CustomStringConvertible {
    var group: String
    var topic: String
    var queueId: Int32

    var description: String { "\(group)@\(topic)/\(queueId)" }
}

/// One durable change of consumer progress. Replaying events is idempotent, so a replay may
/// start earlier than strictly needed.
enum ProgressEvent: Equatable, Sendable {
    /// The message at `offset` was handed out for the `attempt`-th time.
    case delivered(ProgressKey, offset: Int64, attempt: Int32)
    /// The message at `offset` is done (acked, filtered out or dead-lettered).
    case acked(ProgressKey, offset: Int64)
    /// Everything below `offset` is done and nothing at or above it is (offset update or reset);
    /// `epoch` orders commits of one queue (see `QueueProgress.commitEpoch`).
    case committed(ProgressKey, offset: Int64, epoch: Int64)
}

/// Consumer progress made durable by the store itself: each event is a message on the system
/// topic `%SYS%CONSUMER_JOURNAL` (queue 0), so it gets the CommitLog's CRCs, flush policy
/// (an ack answered under sync flush is on disk) and crash recovery. A snapshot file
/// (`config/consumerProgress.json`) bounds the replay at start.
struct ConsumerJournal: Sendable {
    let store: MessageStore
    static let queueId: Int32 = 0
    /// Between the fields of one event.
    private static let separator: Character = "\u{1F}"
    /// Between the events of one journal message (a message of one event has none, as before).
    private static let eventSeparator: Character = "\u{1E}"

    /// Appends `events` as one journal message (one store append, one flush wait) and returns
    /// once the store's flush policy holds for all of them. A receive or an ack request journals
    /// its whole batch at once, so consuming costs two appends per batch, not two per message.
    func record(_ events: [ProgressEvent]) async throws(BrokerError) {
        guard !events.isEmpty else { return }
        let message = MessageToAppend(
            topic: SystemTopic.consumerJournal, queueId: Self.queueId, body: Self.encode(events),
            bornTimestamp: MessageStore.nowMilliseconds(), bornHost: store.configuration.storeHost)
        do {
            _ = try await store.append(message)
        } catch {
            throw BrokerError(error)
        }
    }

    /// The journal's end: the next event's offset.
    var endOffset: Int64 { store.maxOffset(topic: SystemTopic.consumerJournal, queueId: Self.queueId) }

    /// Calls `apply` for every event from `offset` on, in order; returns the end offset.
    func replay(from offset: Int64, _ apply: (ProgressEvent) -> Void) throws(BrokerError) -> Int64 {
        try scan(from: offset) { _, events in events.forEach(apply) }.end
    }

    /// Calls `visit` with each journal message from `offset` on (its store time is when its
    /// events became durable) and its events, in order, for at most `limit` messages. Returns the
    /// offset after the last one read, how many were read, and whether `limit` cut the scan short.
    func scan(
        from offset: Int64, limit: Int = .max, _ visit: (StoredMessage, [ProgressEvent]) -> Void
    ) throws(BrokerError) -> (end: Int64, scanned: Int, truncated: Bool) {
        if limit <= 0 { return (offset, 0, offset < endOffset) }
        var next = offset
        var scanned = 0
        while true {
            let batch: QueueReadResult
            do {
                batch = try store.messages(topic: SystemTopic.consumerJournal, queueId: Self.queueId, from: next, maxCount: min(1024, max(1, limit - scanned)))
            } catch {
                throw BrokerError(error)
            }
            for message in batch.messages {
                visit(message, Self.decodeAll(String(decoding: message.body, as: UTF8.self)))
            }
            scanned += batch.messages.count
            if batch.messages.isEmpty || batch.nextOffset <= next { return (max(next, batch.nextOffset), scanned, false) }
            next = batch.nextOffset
            if scanned >= limit { return (next, scanned, next < endOffset) }
        }
    }

    /// The body of one journal message holding `events`, in order: each event's text form,
    /// separated by 0x1E, written straight into one buffer (a receive journals its whole batch).
    static func encode(_ events: [ProgressEvent]) -> [UInt8] {
        var body: [UInt8] = []
        body.reserveCapacity(events.count * 48)
        for (index, event) in events.enumerated() {
            if index > 0 { body.append(UInt8(ascii: "\u{1E}")) }
            append(event, to: &body)
        }
        return body
    }

    private static func append(_ event: ProgressEvent, to body: inout [UInt8]) {
        func field(_ text: String) {
            body.append(UInt8(ascii: "\u{1F}"))
            body.append(contentsOf: text.utf8)
        }
        func field(_ number: some BinaryInteger) {
            body.append(UInt8(ascii: "\u{1F}"))
            ASCIIDecimal.append(Int64(number), to: &body)
        }
        let key: ProgressKey
        switch event {
        case .delivered(let k, _, _): body.append(UInt8(ascii: "D")); key = k
        case .acked(let k, _): body.append(UInt8(ascii: "A")); key = k
        case .committed(let k, _, _): body.append(UInt8(ascii: "C")); key = k
        }
        field(key.group)
        field(key.topic)
        field(key.queueId)
        switch event {
        case .delivered(_, let offset, let attempt):
            field(offset)
            field(attempt)
        case .acked(_, let offset):
            field(offset)
        case .committed(_, let offset, let epoch):
            field(offset)
            field(epoch)
        }
    }

    /// Every event of one journal message; a malformed event is skipped, not the whole message.
    static func decodeAll(_ text: String) -> [ProgressEvent] {
        text.split(separator: eventSeparator).compactMap { decode(String($0)) }
    }

    /// One event's text form: its kind letter and fields separated by 0x1F.
    static func encode(_ event: ProgressEvent) -> String {
        var body: [UInt8] = []
        append(event, to: &body)
        return String(decoding: body, as: UTF8.self)
    }

    static func decode(_ text: String) -> ProgressEvent? {
        let fields = text.split(separator: separator, omittingEmptySubsequences: false).map(String.init)
        guard fields.count >= 5, let queueId = Int32(fields[3]), let offset = Int64(fields[4]) else { return nil }
        let key = ProgressKey(group: fields[1], topic: fields[2], queueId: queueId)
        switch fields[0] {
        case "D":
            guard fields.count == 6, let attempt = Int32(fields[5]) else { return nil }
            return .delivered(key, offset: offset, attempt: attempt)
        case "A": return .acked(key, offset: offset)
        case "C":
            guard fields.count == 6, let epoch = Int64(fields[5]) else { return nil }
            return .committed(key, offset: offset, epoch: epoch)
        default: return nil
        }
    }
}
