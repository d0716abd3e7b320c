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
///
/// A message pending longer than half the log's retention time (`fileReservedTime`) is **rolled
/// forward**: copied to the schedule queue's end, the copy naming the offset it supersedes and
/// the one its recall handle names (`roll`); a recalled one still remembered gets a bodiless
/// copy marked recalled. So a delay of days keeps no old segment from retention, as RocketMQ's
/// timer rolls long delays. The copy settles the old entry by itself (no op record, so a crash
/// cannot leave both pending); the mark passes the old entry only once the copy is flushed and
/// some seconds old.
final class DelayService: Sendable {
    static let scheduleTopic = SystemTopic.delaySchedule
    static let opTopic = SystemTopic.delayOp
    static let markFile = "delays.json"
    /// Most messages one `deliverDue` copies at once.
    static let deliveryBatch = 256
    /// How long a message whose copy failed (a full disk, a topic not yet copied from the
    /// master after a promotion) waits before the next try.
    static let retryDelayMilliseconds: Int64 = 1000
    /// Tries before a message whose copy fails for a reason of its own (its topic is missing,
    /// its record unreadable) is dropped, logged as an error. A store that refuses every write
    /// (a full disk) is waited out, however long.
    static let maxAttempts = 30
    /// How long past its due time a recall is remembered, so that repeating it answers OK.
    static let recallMemoryMilliseconds: Int64 = 3_600_000
    /// Most messages one `roll` moves at once.
    static let rollBatch = 64
    /// How long a rolled entry still holds the mark after its copy was written (once the copy is
    /// flushed): the copy reaches a slave, whose mark is copied from this one, meanwhile.
    static let rollGraceMilliseconds: Int64 = 10_000

    /// What the broker keeps of a scheduled message.
    struct Entry: Sendable {
        /// Its offset in the schedule queue: the id recall handles and op records use.
        var queueOffset: Int64
        var physicalOffset: Int64
        /// The op queue's offset before which no op record of it can be.
        var opsFrom: Int64
        /// When it is due, ms since the epoch.
        var due: Int64
        /// When its record was stored, ms since the epoch: rolled forward once that is old.
        var storedAt: Int64
        /// The schedule offset it was first stored at, which its recall handle names (its
        /// `queueOffset` until rolled forward), and that first record's CommitLog offset.
        var origin: Int64
        var originAt: Int64
        /// When the timer tries it next: its due time, later after a failed copy.
        var fireAt: Int64
        var attempts = 0
        var topic: String
        var messageId: String

        init(
            queueOffset: Int64, physicalOffset: Int64, opsFrom: Int64, due: Int64, topic: String, messageId: String, storedAt: Int64,
            origin: Int64? = nil, originAt: Int64? = nil
        ) {
            self.queueOffset = queueOffset
            self.physicalOffset = physicalOffset
            self.opsFrom = opsFrom
            self.due = due
            self.storedAt = storedAt
            self.origin = origin ?? queueOffset
            self.originAt = originAt ?? physicalOffset
            self.fireAt = due
            self.topic = topic
            self.messageId = messageId
        }

        func matches(messageId: String, topic: String) -> Bool { self.messageId == messageId && self.topic == topic }
    }

    enum Outcome: String, Sendable {
        case delivered = "DELIVERED"
        case recalled = "RECALLED"
        case discarded = "DISCARDED"
    }

    /// Why an entry is claimed: taken out of `pending` while it is settled or moved.
    enum Purpose: Sendable {
        case delivery, recall, roll
    }

    /// Where the start-up scan of each queue begins.
    struct Mark: Codable, Equatable, Sendable {
        var scheduleFrom: Int64
        var opsFrom: Int64
    }

    private struct State {
        /// Bumped by `reload`: work claimed from an older state does not come back into the new one.
        var generation = 0
        var pending: [Int64: Entry] = [:]
        var firings = Heap<HeapKey>()
        /// Firing keys of entries claimed for a recall or a roll, taken off the heap's top so that
        /// the timer does not keep finding them due; back with `restore`, dropped with `endClaim`.
        var parked: [Int64: HeapKey] = [:]
        /// Pending and recalled entries by when their record was stored, for `roll`.
        var aged = Heap<HeapKey>()
        /// Being copied to its queue, recalled or rolled forward right now, between the claim and
        /// the record that settles or moves it.
        var claimed: [Int64: (entry: Entry, purpose: Purpose)] = [:]
        /// The current schedule offset of each entry rolled forward, by its origin (the offset its
        /// recall handle names).
        var aliases: [Int64: Int64] = [:]
        /// Entries rolled forward whose copy is not flushed, or not `rollGraceMilliseconds` old,
        /// yet: they still hold the mark. The copy's end in the log, and when it was written.
        var rolled: [Int64: (entry: Entry, end: Int64, at: Int64)] = [:]
        /// Recalled: kept until `recallMemoryMilliseconds` past the due time, so a repeated recall answers OK.
        var recalled: [Int64: Entry] = [:]
        /// Schedules in progress, by token: the queues' ends when each began (its record lands past them).
        var preparing: [UInt64: Mark] = [:]
        var nextToken: UInt64 = 0
        var delivered = 0
        var rolledForward = 0
        /// Every entry not settled yet (pending, claimed or recalled): the mark.
        var unsettled = UnsettledEntries()
        /// Recalled entries by due time, to forget them `recallMemoryMilliseconds` after it.
        var recallExpiry = Heap<HeapKey>()

        /// A pending entry: new (`track`), or back from a claim with a new firing time.
        mutating func add(_ entry: Entry, track: Bool = false) {
            pending[entry.queueOffset] = entry
            firings.insert(HeapKey(value: entry.fireAt, id: entry.queueOffset))
            aged.insert(HeapKey(value: entry.storedAt, id: entry.queueOffset))
            if entry.origin != entry.queueOffset { aliases[entry.origin] = entry.queueOffset }
            if track { self.track(entry) }
        }

        /// An entry claimed for a recall or a roll that did not happen: pending again as it was,
        /// with its firing key (back from `parked` if the heap's top was it meanwhile) and, with
        /// `aging`, an age key (one more is harmless: a stale one is skipped).
        mutating func restore(_ entry: Entry, aging: Bool = true) {
            claimed[entry.queueOffset] = nil
            pending[entry.queueOffset] = entry
            if let key = parked.removeValue(forKey: entry.queueOffset) { firings.insert(key) }
            if aging { aged.insert(HeapKey(value: entry.storedAt, id: entry.queueOffset)) }
        }

        /// A recall or a roll claim ended with the entry settled or moved: its firing key is stale.
        mutating func endClaim(_ queueOffset: Int64) {
            claimed[queueOffset] = nil
            parked[queueOffset] = nil
        }

        /// Pops the firing heap's stale keys and parks those of entries a recall or a roll holds
        /// (the claim may fail and put the entry back: its key must survive); returns the top
        /// key, which stands for a pending entry.
        mutating func liveFiringTop() -> HeapKey? {
            while let top = firings.min {
                if let entry = pending[top.id], entry.fireAt == top.value { return top }
                _ = firings.removeMin()
                if let claim = claimed[top.id], claim.purpose != .delivery, claim.entry.fireAt == top.value { parked[top.id] = top }
            }
            return nil
        }

        /// The entry a recall handle's offset names now: itself, or where it was rolled to.
        func current(_ origin: Int64) -> Int64 { aliases[origin] ?? origin }

        /// `entry` leaves the state for good (settled, or a recall forgotten): its alias goes too.
        mutating func forgetAlias(of entry: Entry) {
            if entry.origin != entry.queueOffset, aliases[entry.origin] == entry.queueOffset { aliases[entry.origin] = nil }
        }

        /// Counts `entry` in the mark until it is settled.
        mutating func track(_ entry: Entry) {
            unsettled.track(id: entry.queueOffset, queueOffset: entry.queueOffset, opsFrom: entry.opsFrom)
        }

        mutating func recall(_ entry: Entry) {
            recalled[entry.queueOffset] = entry
            aged.insert(HeapKey(value: entry.storedAt, id: entry.queueOffset))
            if entry.origin != entry.queueOffset { aliases[entry.origin] = entry.queueOffset }
            recallExpiry.insert(HeapKey(value: entry.due, id: entry.queueOffset))
        }

        /// The copy rolled from `queueOffset` was read back (`reload`): that entry is settled.
        mutating func supersede(_ queueOffset: Int64) {
            if let entry = pending.removeValue(forKey: queueOffset) ?? recalled.removeValue(forKey: queueOffset) { forgetAlias(of: entry) }
        }

        func isUnsettled(_ queueOffset: Int64) -> Bool {
            pending[queueOffset] != nil || claimed[queueOffset] != nil || recalled[queueOffset] != nil || rolled[queueOffset] != nil
        }

        /// Forgets recalls remembered long enough and rolled entries whose copy is flushed (below
        /// `flushed`) and old enough, then returns the oldest unsettled entry's offsets, together
        /// with the starts of schedules in progress; nil when there is none.
        mutating func oldest(now: Int64, flushed: Int64) -> Mark? {
            while let top = recallExpiry.min, top.value <= now - DelayService.recallMemoryMilliseconds {
                _ = recallExpiry.removeMin()
                if let entry = recalled.removeValue(forKey: top.id) { forgetAlias(of: entry) }
            }
            for (offset, moved) in rolled where moved.end <= flushed && moved.at <= now - DelayService.rollGraceMilliseconds {
                rolled[offset] = nil
            }
            let (pending, claimed, recalled, rolled) = (self.pending, self.claimed, self.recalled, self.rolled)
            var oldest = unsettled.oldest(
                isUnsettled: isUnsettled,
                unsettled: {
                    (Array(pending.values) + claimed.values.map(\.entry) + Array(recalled.values) + rolled.values.map(\.entry))
                        .map { ($0.queueOffset, $0.queueOffset, $0.opsFrom) }
                },
                unsettledCount: pending.count + claimed.count + recalled.count + rolled.count
            ).map { Mark(scheduleFrom: $0.queueOffset, opsFrom: $0.opsFrom) }
            for start in preparing.values {
                oldest = Mark(
                    scheduleFrom: min(oldest?.scheduleFrom ?? start.scheduleFrom, start.scheduleFrom),
                    opsFrom: min(oldest?.opsFrom ?? start.opsFrom, start.opsFrom))
            }
            return oldest
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
        let now = MessageStore.nowMilliseconds()
        // Every op record of a message at or past the mark is at or past the mark's op offset:
        // that stays the bound for what is read back (the op queue's end would skip the records
        // of messages settled before this reload that lie past an older pending one).
        let opsFrom = mark?.opsFrom ?? 0
        try store.forEachMessage(systemTopic: Self.scheduleTopic, from: mark?.scheduleFrom ?? 0) { message in
            guard let entry = Self.entry(of: message, opsFrom: opsFrom) else { return }
            // A copy rolled forward settles the entry it was copied from, read before it.
            if let from = message.properties[StoredProperty.delayRolledFrom].flatMap(Int64.init) { fresh.supersede(from) }
            // A recalled one's copy is recalled itself: never delivered.
            let outcome = message.properties[StoredProperty.delayRecalled] != nil ? .recalled : settled[entry.queueOffset]
            switch outcome {
            case nil: fresh.add(entry, track: true)
            case .recalled?:
                if entry.due > now - Self.recallMemoryMilliseconds {
                    fresh.recall(entry)
                    fresh.track(entry)
                }
            case .delivered?, .discarded?: break
            }
        }
        state.withLock { s in
            fresh.generation = s.generation + 1
            s = fresh
        }
        if !fresh.pending.isEmpty { logger.info("pending delay messages recovered", metadata: ["count": "\(fresh.pending.count)"]) }
    }

    private static func entry(of message: StoredMessage, opsFrom: Int64) -> Entry? {
        guard let topic = message.properties[StoredProperty.realTopic], let due = message.deliveryTime else { return nil }
        return Entry(
            queueOffset: message.queueOffset, physicalOffset: message.physicalOffset, opsFrom: opsFrom, due: due, topic: topic,
            messageId: message.messageId, storedAt: message.storeTimestamp,
            origin: message.properties[StoredProperty.delayOrigin].flatMap(Int64.init),
            originAt: message.properties[StoredProperty.delayOriginAt].flatMap(Int64.init))
    }

    /// An op record's body: the scheduled offsets it settles, in decimal, comma-separated.
    static func opBody(_ offsets: [Int64]) -> [UInt8] { Array(offsets.map(String.init).joined(separator: ",").utf8) }

    static func offsets(inOpBody body: [UInt8]) -> [Int64] {
        body.split(separator: UInt8(ascii: ",")).compactMap { Int64(String(decoding: $0, as: UTF8.self)) }
    }

    /// Saves where the next start's scans may begin, if that moved: the oldest scheduled message
    /// not settled (pending, being settled, recalled and remembered, or being scheduled), else
    /// the queues' ends. Called by the timer about once a second.
    func saveMark(now: Int64 = MessageStore.nowMilliseconds()) {
        markFile.save(mark(now: now), logger: logger)
    }

    /// The mark `saveMark` would save at `now`. Amortized O(log n) in the entries kept, plus the
    /// entries rolled forward in the last seconds: the timer computes it once a second under the
    /// lock that schedules, recalls and deliveries take.
    func mark(now: Int64 = MessageStore.nowMilliseconds()) -> Mark {
        let flushed = store.commitLogFlushedOffset
        return state.withLock { s in
            s.oldest(now: now, flushed: flushed) ?? Mark(
                scheduleFrom: store.maxOffset(topic: Self.scheduleTopic, queueId: 0), opsFrom: store.maxOffset(topic: Self.opTopic, queueId: 0))
        }
    }

    /// Where in the CommitLog the oldest scheduled message not settled lies, as the saved mark
    /// says (a master saves it about once a second, a slave holds its master's copy): retention
    /// keeps it and everything after, since it is copied from its record when due. Without a
    /// mark, from the schedule queue's first kept message; nil when nothing is scheduled past
    /// the mark.
    static func oldestRecordNeeded(in store: MessageStore) -> Int64? {
        let mark = ScanMark<Mark>.peek(store.configDirectory + "/" + markFile)
        return store.physicalOffset(topic: scheduleTopic, queueId: 0, at: mark?.scheduleFrom ?? 0)
    }

    /// Keys in the mark's schedule-offset heap, stale ones included (tests).
    var markHeapCount: Int { state.withLock { $0.unsettled.count } }

    /// Keys in the firing heap, stale ones included (tests).
    var firingKeyCount: Int { state.withLock { $0.firings.count } }

    /// Delay messages waiting for their time (admin, console, tests).
    var pendingCount: Int { state.withLock { s in s.pending.count + s.claimed.values.count { $0.purpose != .recall } } }

    /// Delay messages copied to their queue since the broker started.
    var deliveredCount: Int { state.withLock { $0.delivered } }

    /// Delay messages (and remembered recalls) rolled forward since the broker started.
    var rolledCount: Int { state.withLock { $0.rolledForward } }

    /// When the timer should next look (ms since the epoch), nil when nothing is pending.
    var nextFiring: Int64? {
        state.withLock { s in
            if s.firings.isMostlyStale(liveCount: s.pending.count + s.claimed.count) {
                // Rolled and settled entries leave their keys behind until their time.
                let held = s.claimed.values.filter { $0.purpose != .delivery && s.parked[$0.entry.queueOffset] == nil }.map(\.entry)
                s.firings = Heap((Array(s.pending.values) + held).map { HeapKey(value: $0.fireAt, id: $0.queueOffset) })
            }
            return s.liveFiringTop()?.value
        }
    }

    // MARK: Scheduling

    /// Stores `message` (validated, queue chosen, due at `due`) in the schedule queue. It is
    /// pending from the moment it is written, also when the flush or a sync master's slave then
    /// fails to confirm it in time (the send is answered with that error, as a plain send is).
    func schedule(_ message: MessageToAppend, due: Int64, broker: Broker) async throws(BrokerError) -> AppendResult {
        var scheduled = message
        scheduled.properties[StoredProperty.realTopic] = message.topic
        scheduled.properties[StoredProperty.realQueueId] = String(message.queueId)
        scheduled.properties[StoredProperty.deliveryTime] = String(due)
        scheduled.topic = Self.scheduleTopic
        scheduled.queueId = 0
        let (token, start, generation) = state.withLock { s in
            let token = s.nextToken
            s.nextToken &+= 1
            let start = Mark(scheduleFrom: store.maxOffset(topic: Self.scheduleTopic, queueId: 0), opsFrom: store.maxOffset(topic: Self.opTopic, queueId: 0))
            s.preparing[token] = start
            return (token, start, s.generation)
        }
        let messageId = message.properties[MessageProperty.uniqueKey]
        let result: AppendResult
        do {
            result = try await store.appendReportingWrite(store.encode(scheduled), onWritten: { written in
                state.withLock { s in
                    guard s.generation == generation else { return }
                    s.preparing[token] = nil
                    s.add(Entry(
                        queueOffset: written.queueOffset, physicalOffset: written.physicalOffset, opsFrom: start.opsFrom, due: due,
                        topic: message.topic, messageId: messageId ?? written.msgId, storedAt: written.storeTimestamp), track: true)
                }
            })
        } catch {
            state.withLock { s in if s.generation == generation { s.preparing[token] = nil } }
            throw broker.brokerError(error)
        }
        try await broker.awaitReplica(of: result)
        return result
    }

    // MARK: Recall

    /// Recalls the scheduled message at `queueOffset`, which must be `messageId` of `topic` and
    /// not due yet. Recalling it again is no error.
    /// - Throws: `.notFound` when no such message is scheduled here, or it is due already
    ///   (it may have been delivered: too late to recall); `.busy` while another recall of it
    ///   is being recorded; `.storage` and the like when the recall could not be recorded (the
    ///   message stays scheduled); `.flushTimeout`, `.noReplica`, `.replicationTimeout` when it
    ///   was recorded here but not confirmed in time (it is recalled all the same).
    func recall(queueOffset origin: Int64, messageId: String, topic: String, broker: Broker) async throws(BrokerError) {
        let now = MessageStore.nowMilliseconds()
        enum Claim { case claimed(Entry, generation: Int), already, busy(Purpose), delivering, absent }
        let claim: Claim = state.withLock { s in
            let queueOffset = s.current(origin)
            if let entry = s.recalled[queueOffset], entry.matches(messageId: messageId, topic: topic) { return .already }
            if let claim = s.claimed[queueOffset], claim.entry.matches(messageId: messageId, topic: topic) {
                return claim.purpose == .delivery ? .delivering : .busy(claim.purpose)
            }
            guard let entry = s.pending[queueOffset], entry.matches(messageId: messageId, topic: topic), entry.due > now else { return .absent }
            s.pending[queueOffset] = nil
            s.claimed[queueOffset] = (entry, .recall)
            return .claimed(entry, generation: s.generation)
        }
        let entry: Entry, generation: Int
        switch claim {
        case .already: return
        case .busy(let purpose):
            throw .busy("delay message \(messageId) is being \(purpose == .roll ? "moved in the schedule" : "recalled") right now: try again")
        case .delivering: throw .notFound("delay message \(messageId) is being delivered: too late to recall it")
        case .absent: throw notRecallable(queueOffset: origin, messageId: messageId, topic: topic, now: now)
        case .claimed(let claimed, let claimedIn): (entry, generation) = (claimed, claimedIn)
        }
        let unconfirmed: BrokerError?
        do {
            unconfirmed = try await writeOp([entry.queueOffset], .recalled, broker: broker)
        } catch {
            state.withLock { s in
                guard s.generation == generation else { return }
                s.restore(entry)
            }
            throw error
        }
        // The record is in this log even when its flush or a slave did not confirm it in time:
        // this broker never delivers the message; the caller hears of the confirmation.
        state.withLock { s in
            guard s.generation == generation else { return }
            s.endClaim(entry.queueOffset)
            s.recall(entry)
        }
        if let unconfirmed { throw unconfirmed }
    }

    /// Why the message at `queueOffset` cannot be recalled: read from the log for the answer.
    private func notRecallable(queueOffset: Int64, messageId: String, topic: String, now: Int64) -> BrokerError {
        let stored = try? store.messages(topic: Self.scheduleTopic, queueId: 0, from: queueOffset, maxCount: 1).messages.first
        guard let stored, stored.queueOffset == queueOffset, stored.messageId == messageId,
              stored.properties[StoredProperty.realTopic] == topic, let due = stored.deliveryTime
        else {
            return .notFound("no delay message \(messageId) of topic \(topic) is scheduled at offset \(queueOffset) (removed by retention, or a handle of another topic)")
        }
        // Not due, yet not scheduled: dropped with its deleted topic (a recall is remembered, and
        // answered above, until an hour past the due time).
        return .notFound(
            due > now
                ? "delay message \(messageId) is no longer scheduled: its topic was deleted since"
                : "delay message \(messageId) was due \(now - due) ms ago and may have been delivered: too late to recall it")
    }

    // MARK: Delivery

    /// What becomes of one due entry.
    private enum Step {
        case copy(EncodedMessage)
        case settle(Outcome)
        /// Tried again later; `counts`: the cause is the message's own (see `maxAttempts`).
        case retry(String, counts: Bool)
    }

    /// Copies the messages due at `now` (at most `deliveryBatch`) to their real queues, in the
    /// order they fire (due order, retries by their next try), then records them delivered with
    /// one op record. Returns how many it copied.
    @discardableResult
    func deliverDue(now: Int64 = MessageStore.nowMilliseconds(), broker: Broker) async -> Int {
        let (due, generation): ([Entry], Int) = state.withLock { s in
            var due: [Entry] = []
            while due.count < Self.deliveryBatch, let top = s.liveFiringTop(), top.value <= now {
                _ = s.firings.removeMin()
                guard let entry = s.pending.removeValue(forKey: top.id) else { continue }
                s.claimed[top.id] = (entry, .delivery)
                due.append(entry)
            }
            return (due, s.generation)
        }
        guard !due.isEmpty else { return 0 }
        let steps = due.map { prepareCopy($0, broker: broker) }
        // Appended in this order (each append writes before it returns), flushed together.
        let copies = steps.compactMap { if case .copy(let message) = $0 { message } else { nil } }
        var results = await broker.appendInOrder(copies).makeIterator()
        var settled: [Outcome: [Entry]] = [:]
        var retry: [(entry: Entry, why: String, counts: Bool)] = []
        for (entry, step) in zip(due, steps) {
            switch step {
            case .settle(let outcome): settled[outcome, default: []].append(entry)
            case .retry(let why, let counts): retry.append((entry, why, counts))
            case .copy:
                switch results.next() {
                case (_, .success)?: settled[.delivered, default: []].append(entry)
                // Written, then not flushed or confirmed in time: in the queue all the same.
                case (true, .failure)?: settled[.delivered, default: []].append(entry)
                // Refused before it was written (a full disk, a write hold): waited out.
                case (false, .failure(let error))?: retry.append((entry, "\(error)", false))
                case nil: retry.append((entry, "no append result", false))
                }
            }
        }
        let dropped = retry.filter { $0.counts && $0.entry.attempts + 1 >= Self.maxAttempts }
        for (entry, why, _) in dropped {
            logger.error("a due delay message could not be delivered in \(Self.maxAttempts) tries: it is dropped", metadata: [
                "topic": "\(entry.topic)", "messageId": "\(entry.messageId)", "error": "\(why)",
            ])
        }
        settled[.discarded, default: []] += dropped.map(\.entry)
        for (outcome, entries) in settled where !entries.isEmpty {
            do {
                _ = try await writeOp(entries.map(\.queueOffset).sorted(), outcome, broker: broker)
            } catch {
                // The copies are made: after a restart before the next op record, they are made
                // again (at least once). Until then they count as settled.
                logger.error("could not record delay messages as settled", metadata: ["count": "\(entries.count)", "error": "\(error)"])
            }
        }
        let retried = retry.filter { !$0.counts || $0.entry.attempts + 1 < Self.maxAttempts }
        // One line per turn: a full disk refuses every due message alike, once a second.
        if let first = retried.first {
            logger.warning("could not deliver due delay messages; trying again in \(Self.retryDelayMilliseconds) ms", metadata: [
                "count": "\(retried.count)", "topic": "\(first.entry.topic)", "messageId": "\(first.entry.messageId)", "error": "\(first.why)",
            ])
        }
        let delivered = settled[.delivered]?.count ?? 0
        state.withLock { s in
            guard s.generation == generation else { return }
            for entry in due {
                s.claimed[entry.queueOffset] = nil
                s.forgetAlias(of: entry)
            }
            for (var entry, _, counts) in retried {
                if counts { entry.attempts += 1 }
                entry.fireAt = now + Self.retryDelayMilliseconds
                s.add(entry)
            }
            s.delivered += delivered
        }
        return delivered
    }

    // MARK: Rolling forward

    /// What `roll` does with one entry it took.
    private enum Roll {
        /// Copied (a recalled one: a bodiless copy marked recalled).
        case copy(EncodedMessage)
        /// Settled instead: its topic was deleted since it was scheduled, or its record is gone.
        case discard
        /// Left where it is until due (`roll` takes it no more): its record cannot be read or
        /// its copy would be too large.
        case stay
    }

    /// Rolls forward the pending and recalled entries whose record was stored before `cutoff`
    /// (at most `rollBatch`, oldest first): copies each to the schedule queue's end, due as
    /// before, naming the offset it supersedes and its origin, the offset its recall handle
    /// names. A copy takes the old entry's place as soon as it is written. One due within a
    /// second is left to its delivery, a recall past its due time to its expiry. Returns how
    /// many it moved; a full batch means more may be waiting.
    @discardableResult
    func roll(storedBefore cutoff: Int64, now: Int64 = MessageStore.nowMilliseconds(), broker: Broker) async -> Int {
        let (taken, generation, opsFrom): ([(entry: Entry, recalled: Bool)], Int, Int64) = state.withLock { s in
            if s.aged.isMostlyStale(liveCount: s.pending.count + s.recalled.count) {
                s.aged = Heap((Array(s.pending.values) + Array(s.recalled.values)).map { HeapKey(value: $0.storedAt, id: $0.queueOffset) })
            }
            var taken: [(entry: Entry, recalled: Bool)] = []
            // A recalled entry stays in `recalled` while it is copied, and may have two age keys.
            var recalledTaken = Set<Int64>()
            while taken.count < Self.rollBatch, let top = s.aged.min, top.value < cutoff {
                _ = s.aged.removeMin()
                if let entry = s.pending[top.id], entry.storedAt == top.value {
                    guard entry.fireAt > now + 1000 else { continue }
                    s.pending[top.id] = nil
                    s.claimed[top.id] = (entry, .roll)
                    taken.append((entry, false))
                } else if let entry = s.recalled[top.id], entry.storedAt == top.value, entry.due > now,
                          recalledTaken.insert(top.id).inserted {
                    // Not claimed: a repeated recall keeps answering OK meanwhile.
                    taken.append((entry, true))
                }
            }
            return (taken, s.generation, store.maxOffset(topic: Self.opTopic, queueId: 0))
        }
        guard !taken.isEmpty else { return 0 }
        let steps = taken.map { rollStep($0.entry, recalled: $0.recalled) }
        let moving = zip(taken, steps).compactMap { item, step in if case .copy = step { item } else { nil } }
        let copies = steps.compactMap { if case .copy(let message) = $0 { message } else { nil } }
        let results = await broker.appendInOrder(copies) { index, written in
            state.withLock { s in
                guard s.generation == generation else { return }
                let (from, recalled) = moving[index]
                let moved = Entry(
                    queueOffset: written.queueOffset, physicalOffset: written.physicalOffset, opsFrom: opsFrom, due: from.due,
                    topic: from.topic, messageId: from.messageId, storedAt: written.storeTimestamp, origin: from.origin,
                    originAt: from.originAt)
                if recalled {
                    // Forgotten meanwhile (its memory ran out): the copy, read back, is too.
                    guard s.recalled.removeValue(forKey: from.queueOffset) != nil else { return }
                    s.recall(moved)
                    s.track(moved)
                } else {
                    var moved = moved
                    moved.fireAt = from.fireAt
                    moved.attempts = from.attempts
                    s.endClaim(from.queueOffset)
                    s.add(moved, track: true)
                }
                s.rolled[from.queueOffset] = (from, written.physicalOffset + Int64(written.wroteBytes), now)
                s.rolledForward += 1
            }
        }
        var moved = 0
        var retry: [(entry: Entry, recalled: Bool)] = []
        for (item, (written, outcome)) in zip(moving, results) {
            guard written else {
                retry.append(item)
                continue
            }
            moved += 1
            if case .failure(let error) = outcome {
                logger.warning("a delay message rolled forward was not confirmed in time; it is rolled all the same", metadata: [
                    "messageId": "\(item.entry.messageId)", "error": "\(error)",
                ])
            }
        }
        if let first = retry.first {
            // Refused before it was written (a full disk, a write hold): tried again next turn.
            logger.warning("could not roll delay messages forward; trying again", metadata: [
                "count": "\(retry.count)", "messageId": "\(first.entry.messageId)",
            ])
        }
        let discarded = zip(taken, steps).compactMap { item, step in if case .discard = step { item.entry } else { nil } }
        var discardRecorded = true
        if !discarded.isEmpty {
            do {
                _ = try await writeOp(discarded.map(\.queueOffset).sorted(), .discarded, broker: broker)
            } catch {
                logger.error("could not record delay messages as discarded", metadata: ["count": "\(discarded.count)", "error": "\(error)"])
                discardRecorded = false
            }
        }
        let stay = zip(taken, steps).compactMap { item, step in if case .stay = step, !item.recalled { item.entry } else { nil } }
        state.withLock { s in
            guard s.generation == generation else { return }
            for (entry, recalled) in retry {
                if recalled {
                    if s.recalled[entry.queueOffset] != nil { s.aged.insert(HeapKey(value: entry.storedAt, id: entry.queueOffset)) }
                } else {
                    s.restore(entry)
                }
            }
            // Not taken again (until the age heap is rebuilt, or a restart).
            for entry in stay { s.restore(entry, aging: false) }
            // Settled by the op record, or pending again when it could not be written.
            for entry in discarded {
                if discardRecorded {
                    s.endClaim(entry.queueOffset)
                    s.forgetAlias(of: entry)
                } else {
                    s.restore(entry)
                }
            }
        }
        if moved > 0 { logger.info("delay messages rolled forward in the schedule", metadata: ["count": "\(moved)"]) }
        return moved
    }

    /// What `roll` does with `entry`: its copy, encoded and checked, or why there is none.
    private func rollStep(_ entry: Entry, recalled: Bool) -> Roll {
        var properties: [String: String]
        var body: [UInt8] = []
        var (flags, bornTimestamp, bornHost): (Int32, Int64, String) = (0, MessageStore.nowMilliseconds(), "")
        if recalled {
            // Enough to answer a repeated recall after a restart; nothing to deliver.
            properties = [
                StoredProperty.realTopic: entry.topic, StoredProperty.deliveryTime: String(entry.due),
                MessageProperty.uniqueKey: entry.messageId, StoredProperty.delayRecalled: "1",
            ]
        } else {
            if wentWithItsTopic(entry) { return .discard }
            let record: StoredMessage
            do {
                guard let read = try storedRecord(of: entry) else { return .discard }
                record = read
            } catch {
                logger.warning("cannot read a delay message to roll it forward: it stays where it is until due", metadata: [
                    "topic": "\(entry.topic)", "messageId": "\(entry.messageId)", "error": "\(error)",
                ])
                return .stay
            }
            properties = record.properties
            body = record.body
            (flags, bornTimestamp, bornHost) = (record.flags, record.bornTimestamp, record.bornHost)
            // The id stays the one its handle and its delivery name, also for a record that had
            // no unique key (its id was its offset).
            if properties[MessageProperty.uniqueKey] == nil { properties[MessageProperty.uniqueKey] = entry.messageId }
        }
        properties[StoredProperty.delayOrigin] = String(entry.origin)
        properties[StoredProperty.delayOriginAt] = String(entry.originAt)
        properties[StoredProperty.delayRolledFrom] = String(entry.queueOffset)
        do {
            let copy = try store.encode(MessageToAppend(
                topic: Self.scheduleTopic, queueId: 0, body: body, properties: properties, flags: flags,
                bornTimestamp: bornTimestamp, bornHost: bornHost))
            try store.checkSize(copy)
            return .copy(copy)
        } catch {
            logger.warning("a delay message cannot be rolled forward: it stays where it is until due, and so does its segment", metadata: [
                "topic": "\(entry.topic)", "messageId": "\(entry.messageId)", "error": "\(error)",
            ])
            return .stay
        }
    }

    /// The schedule record of `entry`; nil, logged as dropped, when retention (or a disk
    /// cleanup) removed it before it was due. Throws when it is kept but cannot be read.
    private func storedRecord(of entry: Entry) throws(StoreError) -> StoredMessage? {
        do {
            return try store.message(atPhysicalOffset: entry.physicalOffset)
        } catch {
            guard entry.physicalOffset < store.commitLogMinOffset else { throw error }
            logger.error("a delay message's record was removed (retention or disk cleanup) before it was due: it is dropped", metadata: [
                "topic": "\(entry.topic)", "messageId": "\(entry.messageId)",
            ])
            return nil
        }
    }

    /// Whether `entry` went with its topic: scheduled before the topic was deleted, even if one
    /// of the name exists again, also when rolled forward past the deletion since. Logged when so.
    private func wentWithItsTopic(_ entry: Entry) -> Bool {
        guard let deletedAt = store.topicDeletedAt(entry.topic), entry.originAt < deletedAt else { return false }
        logger.notice("a delay message's topic was deleted before it was due: it is dropped", metadata: [
            "topic": "\(entry.topic)", "messageId": "\(entry.messageId)",
        ])
        return true
    }

    /// The real message of `entry`, encoded; or why it is settled or tried again without one.
    private func prepareCopy(_ entry: Entry, broker: Broker) -> Step {
        let scheduled: StoredMessage
        do {
            guard let read = try storedRecord(of: entry) else { return .settle(.discarded) }
            scheduled = read
        } catch {
            return .retry("cannot read its record: \(error)", counts: true)
        }
        if wentWithItsTopic(entry) { return .settle(.discarded) }
        // Missing also right after a promotion, until the master's topic table is copied over.
        guard let topic = broker.topics[entry.topic] else { return .retry("topic \(entry.topic) does not exist", counts: true) }
        var properties = scheduled.properties
        properties[StoredProperty.realTopic] = nil
        for key in [StoredProperty.delayOrigin, StoredProperty.delayOriginAt, StoredProperty.delayRolledFrom] {
            properties[key] = nil
        }
        let queueId = properties.removeValue(forKey: StoredProperty.realQueueId).flatMap { Int32($0) } ?? 0
        let real = MessageToAppend(
            topic: entry.topic, queueId: topic.writeQueue(for: queueId), body: scheduled.body,
            properties: properties, flags: scheduled.flags, bornTimestamp: scheduled.bornTimestamp, bornHost: scheduled.bornHost)
        do {
            // One too large for the store (its limit lowered since) must not hold up the due
            // copies appended after it.
            let copy = try store.encode(real)
            try store.checkSize(copy)
            return .copy(copy)
        } catch {
            logger.error("a due delay message cannot be stored in its queue: it is dropped", metadata: [
                "topic": "\(entry.topic)", "messageId": "\(entry.messageId)", "error": "\(error)",
            ])
            return .settle(.discarded)
        }
    }

    /// Appends the op record settling `offsets`. Returns the error of a flush or a sync master's
    /// slave that did not confirm it in time (the record is stored all the same); throws when it
    /// is not stored.
    private func writeOp(_ offsets: [Int64], _ outcome: Outcome, broker: Broker) async throws(BrokerError) -> BrokerError? {
        let op = MessageToAppend(
            topic: Self.opTopic, queueId: 0, body: Self.opBody(offsets),
            properties: [StoredProperty.delayOutcome: outcome.rawValue], bornTimestamp: MessageStore.nowMilliseconds())
        do {
            _ = try await broker.append(op)
            return nil
        } catch .flushTimeout {
            return .flushTimeout
        } catch .noReplica {
            return .noReplica
        } catch .replicationTimeout {
            return .replicationTimeout
        }
    }
}
