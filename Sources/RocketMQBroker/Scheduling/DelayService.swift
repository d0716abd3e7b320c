import Foundation
import HeapModule
import Logging
import RocketMQAPI
import RocketMQStore
import Synchronization

/// Delay messages (a delivery timestamp ahead of now), stored the way RocketMQ's timer stores
/// them: apart, in queue 0 of `%SYS%TIMER` with their real topic and queue in properties, and
/// appended to that queue when due. So every kind of consumer, pop (push and simple) and pull
/// (broadcasting), sees a delay message only once it is due, and a recalled one never.
///
/// Every outcome appends an *op* record to queue 0 of `%SYS%TIMER_OP` naming the scheduled
/// offsets it settles: delivered (copied to the real queue), recalled, or discarded (its topic
/// or its record is gone). On start, and when a slave becomes master, the broker reads both
/// queues from a mark (`config/delays.json`): every scheduled message without an op record is
/// pending again. Op records travel with the log, so a recall that a master acknowledged is
/// known to a slave that takes over. A crash between a copy and its op record delivers that
/// message again after the restart (at least once, as in RocketMQ).
///
/// The copy keeps the message id, the born time and the delivery timestamp (consumers see when
/// it was due); the send's receipt names the scheduled offset, which a recall handle carries.
final class DelayService: Sendable {
    static let scheduleTopic = SystemTopic.delaySchedule
    static let opTopic = SystemTopic.delayOp
    /// Most messages one `deliverDue` copies at once (appends in flight together).
    static let deliveryBatch = 256
    /// How long a message whose copy failed (a full disk, a write hold) waits before the next try.
    static let retryDelayMilliseconds: Int64 = 1000

    /// What the broker keeps of a scheduled message.
    struct Entry: Sendable {
        /// Its offset in the schedule queue: the id recall handles and op records use.
        var queueOffset: Int64
        var physicalOffset: Int64
        /// The op queue's end just before it was stored: its op record can only come after.
        var opsFrom: Int64
        /// When it is due, ms since the epoch.
        var due: Int64
        var topic: String
        var messageId: String
    }

    enum Outcome: String, Sendable {
        case delivered = "DELIVERED"
        case recalled = "RECALLED"
        case discarded = "DISCARDED"
    }

    /// Where the start-up scan of each queue begins.
    struct Mark: Codable, Equatable, Sendable {
        var scheduleFrom: Int64
        var opsFrom: Int64
    }

    /// The next due time of a pending entry; stale ones (recalled meanwhile) are skipped when popped.
    private struct Due: Comparable {
        var due: Int64
        var queueOffset: Int64
        static func < (a: Due, b: Due) -> Bool { (a.due, a.queueOffset) < (b.due, b.queueOffset) }
    }

    private struct State {
        var pending: [Int64: Entry] = [:]
        var queue = Heap<Due>()
        /// Being copied or recalled right now (between the claim and the op record).
        var claimed: [Int64: Entry] = [:]
        /// Recalled and not yet due: a repeated recall answers OK (kept until its due time passes).
        var recalled: [Int64: Entry] = [:]
        /// Messages being scheduled, not yet in `pending`: no mark is taken meanwhile.
        var preparing = 0
        var savedMark: Mark?
        var delivered = 0

        mutating func add(_ entry: Entry) {
            pending[entry.queueOffset] = entry
            queue.insert(Due(due: entry.due, queueOffset: entry.queueOffset))
        }
    }

    private let state = Mutex(State())
    private let store: MessageStore
    private let logger: Logger
    private let markFile: ScanMark<Mark>

    init(store: MessageStore, logger: Logger) throws(StoreError) {
        self.store = store
        self.logger = logger
        markFile = ScanMark(path: store.configDirectory + "/" + Self.markFile, what: "delay")
        try reload()
    }

    static let markFile = "delays.json"

    /// Reads the schedule and op queues again from the saved mark (at start, and on a promoted
    /// slave, whose log grew by replication).
    func reload() throws(StoreError) {
        let mark = markFile.read(logger: logger)
        var settled: [Int64: Outcome] = [:]
        try store.forEachMessage(systemTopic: Self.opTopic, from: mark?.opsFrom ?? 0) { op in
            guard let outcome = op.properties[StoredProperty.delayOutcome].flatMap(Outcome.init(rawValue:)) else { return }
            for offset in Self.offsets(inOpBody: op.body) { settled[offset] = outcome }
        }
        var fresh = State()
        fresh.savedMark = mark
        let now = MessageStore.nowMilliseconds()
        // Every op record of a message at or past the mark is at or past the mark's op offset:
        // that stays the bound for what is read back (the op queue's end would skip the records
        // of messages settled before this reload that lie past an older pending one).
        let opsFrom = mark?.opsFrom ?? 0
        try store.forEachMessage(systemTopic: Self.scheduleTopic, from: mark?.scheduleFrom ?? 0) { message in
            guard let entry = Self.entry(of: message, opsFrom: opsFrom) else { return }
            switch settled[entry.queueOffset] {
            case nil: fresh.add(entry)
            case .recalled?: if entry.due > now { fresh.recalled[entry.queueOffset] = entry }
            case .delivered?, .discarded?: break
            }
        }
        state.withLock { $0 = fresh }
        if !fresh.pending.isEmpty { logger.info("pending delay messages recovered", metadata: ["count": "\(fresh.pending.count)"]) }
    }

    private static func entry(of message: StoredMessage, opsFrom: Int64) -> Entry? {
        guard let topic = message.properties[StoredProperty.realTopic], let due = message.deliveryTime else { return nil }
        return Entry(
            queueOffset: message.queueOffset, physicalOffset: message.physicalOffset, opsFrom: opsFrom, due: due, topic: topic,
            messageId: message.messageId)
    }

    /// An op record's body: the scheduled offsets it settles, in decimal, comma-separated.
    static func opBody(_ offsets: [Int64]) -> [UInt8] { Array(offsets.map(String.init).joined(separator: ",").utf8) }

    static func offsets(inOpBody body: [UInt8]) -> [Int64] {
        body.split(separator: UInt8(ascii: ",")).compactMap { Int64(String(decoding: $0, as: UTF8.self)) }
    }

    /// Saves where the next start's scans may begin, if that moved: the oldest scheduled message
    /// not settled (pending, being settled, or recalled and not yet due), else the queues' ends.
    /// Skipped while a message is being scheduled. Called by the timer about once a second.
    func saveMark(now: Int64 = MessageStore.nowMilliseconds()) {
        let mark: Mark? = state.withLock { s in
            guard s.preparing == 0 else { return nil }
            s.recalled = s.recalled.filter { $0.value.due > now }
            let unsettled = Array(s.pending.values) + Array(s.claimed.values) + Array(s.recalled.values)
            let mark = if let oldest = unsettled.min(by: { $0.queueOffset < $1.queueOffset }) {
                Mark(scheduleFrom: oldest.queueOffset, opsFrom: unsettled.map(\.opsFrom).min() ?? oldest.opsFrom)
            } else {
                Mark(scheduleFrom: store.maxOffset(topic: Self.scheduleTopic, queueId: 0), opsFrom: store.maxOffset(topic: Self.opTopic, queueId: 0))
            }
            return mark == s.savedMark ? nil : mark
        }
        guard let mark, markFile.write(mark, logger: logger) else { return }
        state.withLock { $0.savedMark = mark }
    }

    /// Delay messages waiting for their time (admin, console, tests).
    var pendingCount: Int { state.withLock { $0.pending.count + $0.claimed.count } }

    /// Delay messages copied to their queue since the broker started.
    var deliveredCount: Int { state.withLock { $0.delivered } }

    /// When the earliest pending message is due (ms since the epoch), nil when none is.
    var nextDue: Int64? {
        state.withLock { s in
            while let top = s.queue.min, s.pending[top.queueOffset]?.due != top.due { _ = s.queue.removeMin() }
            return s.queue.min?.due
        }
    }

    // MARK: Scheduling

    /// Stores `message` (validated, queue chosen, due at `due`) in the schedule queue.
    func schedule(_ message: MessageToAppend, due: Int64, broker: Broker) async throws(BrokerError) -> AppendResult {
        var scheduled = message
        scheduled.properties[StoredProperty.realTopic] = message.topic
        scheduled.properties[StoredProperty.realQueueId] = String(message.queueId)
        scheduled.properties[StoredProperty.deliveryTime] = String(due)
        scheduled.topic = Self.scheduleTopic
        scheduled.queueId = 0
        let opsFrom = state.withLock { s in
            s.preparing += 1
            return store.maxOffset(topic: Self.opTopic, queueId: 0)
        }
        let result: AppendResult
        do {
            result = try await broker.store.append(broker.store.encode(scheduled))
        } catch {
            state.withLock { $0.preparing -= 1 }
            throw broker.brokerError(error)
        }
        state.withLock { s in
            s.add(Entry(
                queueOffset: result.queueOffset, physicalOffset: result.physicalOffset, opsFrom: opsFrom, due: due, topic: message.topic,
                messageId: message.properties[MessageProperty.uniqueKey] ?? result.msgId))
            s.preparing -= 1
        }
        // Scheduled once stored: a sync master whose slave does not confirm it reports that, and
        // the message is delivered when due all the same (as a plain send's would be consumed).
        try await broker.awaitReplica(of: result)
        return result
    }

    // MARK: Recall

    /// Recalls the scheduled message at `queueOffset`, which must be `messageId` of `topic` and
    /// not due yet. Recalling it again is no error.
    /// - Throws: `.notFound` when no such message is scheduled here, or it is due already
    ///   (it may have been delivered: too late to recall); `.storage` when the recall could
    ///   not be recorded (the message stays scheduled).
    func recall(queueOffset: Int64, messageId: String, topic: String, broker: Broker) async throws(BrokerError) {
        let now = MessageStore.nowMilliseconds()
        enum Claim { case claimed(Entry), already, absent }
        let claim: Claim = state.withLock { s in
            if let entry = s.recalled[queueOffset], entry.messageId == messageId, entry.topic == topic { return .already }
            guard let entry = s.pending[queueOffset], entry.messageId == messageId, entry.topic == topic, entry.due > now else {
                return .absent
            }
            s.pending[queueOffset] = nil
            s.claimed[queueOffset] = entry
            return .claimed(entry)
        }
        let entry: Entry
        switch claim {
        case .already: return
        case .absent: throw notRecallable(queueOffset: queueOffset, messageId: messageId, topic: topic, now: now)
        case .claimed(let claimed): entry = claimed
        }
        let unreplicated: BrokerError?
        do {
            unreplicated = try await writeOp([queueOffset], .recalled, broker: broker)
        } catch {
            state.withLock { s in
                s.claimed[queueOffset] = nil
                s.add(entry)
            }
            throw error
        }
        // Recorded here even when a sync master's slave did not confirm it: the record is in
        // this log, so this broker never delivers the message; the caller hears of the slave.
        state.withLock { s in
            s.claimed[queueOffset] = nil
            s.recalled[queueOffset] = entry
        }
        if let unreplicated { throw unreplicated }
    }

    /// Why the message at `queueOffset` cannot be recalled: read from the log for the answer.
    private func notRecallable(queueOffset: Int64, messageId: String, topic: String, now: Int64) -> BrokerError {
        let stored = try? store.messages(topic: Self.scheduleTopic, queueId: 0, from: queueOffset, maxCount: 1).messages.first
        guard let stored, stored.queueOffset == queueOffset, stored.messageId == messageId,
              stored.properties[StoredProperty.realTopic] == topic, let due = stored.deliveryTime
        else {
            return .notFound("no delay message \(messageId) of topic \(topic) is scheduled at offset \(queueOffset) (removed by retention, or a handle of another topic)")
        }
        return .notFound(
            due > now
                ? "delay message \(messageId) is being delivered: too late to recall it"
                : "delay message \(messageId) was due \(now - due) ms ago and may have been delivered: too late to recall it")
    }

    // MARK: Delivery

    /// Copies the messages due at `now` (at most `deliveryBatch`) to their real queues, then
    /// records them delivered with one op record. Returns how many it copied.
    @discardableResult
    func deliverDue(now: Int64 = MessageStore.nowMilliseconds(), broker: Broker) async -> Int {
        let due: [Entry] = state.withLock { s in
            var due: [Entry] = []
            while due.count < Self.deliveryBatch, let top = s.queue.min, top.due <= now {
                _ = s.queue.removeMin()
                guard let entry = s.pending[top.queueOffset], entry.due == top.due else { continue }
                s.pending[top.queueOffset] = nil
                s.claimed[top.queueOffset] = entry
                due.append(entry)
            }
            return due
        }
        guard !due.isEmpty else { return 0 }
        var settled: [Outcome: [Entry]] = [:]
        var retry: [Entry] = []
        await withTaskGroup(of: (Entry, Outcome?).self) { group in
            for entry in due {
                group.addTask { (entry, await self.copy(entry, broker: broker)) }
            }
            for await (entry, outcome) in group {
                if let outcome { settled[outcome, default: []].append(entry) } else { retry.append(entry) }
            }
        }
        for (outcome, entries) in settled {
            do {
                _ = try await writeOp(entries.map(\.queueOffset).sorted(), outcome, broker: broker)
            } catch {
                // The copies are made: after a restart before the next op record, they are made
                // again (at least once). Until then they count as settled.
                logger.error("could not record delay messages as settled", metadata: ["count": "\(entries.count)", "error": "\(error)"])
            }
        }
        state.withLock { s in
            for entry in due { s.claimed[entry.queueOffset] = nil }
            for var entry in retry {
                entry.due = now + Self.retryDelayMilliseconds
                s.add(entry)
            }
            s.delivered += settled[.delivered]?.count ?? 0
        }
        return settled[.delivered]?.count ?? 0
    }

    /// Appends the real message of `entry`; nil when it should be tried again later.
    private func copy(_ entry: Entry, broker: Broker) async -> Outcome? {
        let scheduled: StoredMessage
        do {
            scheduled = try store.message(atPhysicalOffset: entry.physicalOffset)
        } catch {
            logger.error("a delay message's record is gone (retention or disk cleanup removed it before it was due): it is dropped", metadata: [
                "topic": "\(entry.topic)", "messageId": "\(entry.messageId)", "error": "\(error)",
            ])
            return .discarded
        }
        guard let topic = broker.topics[entry.topic] else {
            logger.warning("a delay message's topic was deleted before it was due: it is dropped", metadata: [
                "topic": "\(entry.topic)", "messageId": "\(entry.messageId)",
            ])
            return .discarded
        }
        var properties = scheduled.properties
        properties[StoredProperty.realTopic] = nil
        let queueId = properties.removeValue(forKey: StoredProperty.realQueueId).flatMap { Int32($0) } ?? 0
        let real = MessageToAppend(
            topic: entry.topic, queueId: queueId < topic.queueCount ? queueId : queueId % max(1, topic.queueCount), body: scheduled.body,
            properties: properties, flags: scheduled.flags, bornTimestamp: scheduled.bornTimestamp, bornHost: scheduled.bornHost)
        do {
            _ = try await broker.append(real)
            return .delivered
        } catch .noReplica {
            return .delivered  // stored; a slave did not confirm it in time
        } catch .replicationTimeout {
            return .delivered
        } catch {
            logger.warning("could not deliver a due delay message; trying again", metadata: [
                "topic": "\(entry.topic)", "messageId": "\(entry.messageId)", "error": "\(error)",
            ])
            return nil
        }
    }

    /// Appends the op record settling `offsets`. Returns the replication error of a sync master
    /// whose slave did not confirm it (the record is stored all the same); throws when it is not stored.
    private func writeOp(_ offsets: [Int64], _ outcome: Outcome, broker: Broker) async throws(BrokerError) -> BrokerError? {
        let op = MessageToAppend(
            topic: Self.opTopic, queueId: 0, body: Self.opBody(offsets),
            properties: [StoredProperty.delayOutcome: outcome.rawValue], bornTimestamp: MessageStore.nowMilliseconds())
        do {
            _ = try await broker.append(op)
            return nil
        } catch .noReplica {
            return .noReplica
        } catch .replicationTimeout {
            return .replicationTimeout
        }
    }
}
