import Foundation
import HeapModule
import Logging
import RocketMQAPI
import RocketMQStore
import Synchronization

/// Transactional messages: a producer sends a *half* message, which no consumer sees; then
/// commits it (it is stored again, in its real topic and queue, and delivered) or rolls it back
/// (it never is). A half message left open past its recovery time is *checked back*: the broker
/// asks a producer of its topic, over that producer's telemetry stream, to resolve it
/// (`RecoverOrphanedTransactionCommand`; the producer answers with `EndTransaction`).
///
/// Storage, as RocketMQ keeps it: half messages go to queue 0 of `%SYS%TRANS_HALF` with their
/// real topic and queue in properties; every resolution appends an *op* record to queue 0 of
/// `%SYS%TRANS_OP` naming the half message's physical offset. On start the broker reads both
/// queues, so a half message still open when it stopped is open again, and is checked back.
/// It reads them from a mark (`config/transactions.json`, kept by the periodic check): the
/// oldest half message open then, and the op queue's end when that one was sent. Everything
/// before the mark is resolved, so a broker with a long transactional history reads only what
/// is still undecided; without the file (a first start, or an older data directory) it reads all.
///
/// The transaction id handed to the producer is the half message's offset message id: it
/// locates the half message in the CommitLog, and `EndTransaction` must also name its message
/// id and topic. A commit appends the real message, then the op record; a crash between the
/// two leaves the half message open, and its check-back commits it again (at least once, as
/// in RocketMQ). Resolving twice the same way answers OK; the other way, INVALID_TRANSACTION_ID.
final class TransactionService: Sendable {
    static let halfTopic = SystemTopic.transactionHalf
    static let opTopic = SystemTopic.transactionOp
    static let markFile = "transactions.json"

    /// What the broker keeps of an open half message.
    struct Open: Sendable {
        var physicalOffset: Int64
        /// Its offset in the half queue.
        var queueOffset: Int64
        /// The op queue's end just before it was stored: its op record can only come after.
        var opsFrom: Int64
        var topic: String
        var messageId: String
        /// When its half message was stored.
        var storedAt: Date
        /// When to check it back next.
        var checkAt: Date
        var checks: Int
    }

    enum Resolution: String, Sendable {
        case commit = "COMMIT"
        case rollback = "ROLLBACK"
        /// Rolled back by the broker after `transactionCheckMax` unanswered checks.
        case discard = "DISCARD"
    }

    private struct State {
        /// Open half messages by physical offset.
        var open: [Int64: Open] = [:]
        /// Being resolved right now (an EndTransaction between its claim and its op record).
        var resolving: [Int64: Open] = [:]
        /// Bumped by `reload`: a prepare begun before it does not count in the new state.
        var generation = 0
        /// Half messages being stored, not yet in `open`: no mark is taken meanwhile.
        var preparing = 0
        /// Recent resolutions, for a repeated EndTransaction (a retry after a lost answer).
        var recent: [Int64: Resolution] = [:]
        var recentOrder: [Int64] = []
        /// Open half messages by when they are checked next: `due` takes the due ones without
        /// walking every open transaction.
        var byCheck = Heap<HeapKey>()
        /// Undecided (open or resolving) half messages, by physical offset: the mark.
        var undecided = UnsettledEntries()

        /// An open half message: new (`track`), rescheduled, or back from a failed resolution.
        mutating func add(_ entry: Open, track: Bool = false) {
            open[entry.physicalOffset] = entry
            byCheck.insert(HeapKey(value: TransactionService.milliseconds(entry.checkAt), id: entry.physicalOffset))
            if track { undecided.track(id: entry.physicalOffset, queueOffset: entry.queueOffset, opsFrom: entry.opsFrom) }
        }

        func isUndecided(_ offset: Int64) -> Bool { open[offset] != nil || resolving[offset] != nil }

        /// The oldest undecided half message's mark, nil when there is none.
        mutating func oldest() -> Mark? {
            let (open, resolving) = (self.open, self.resolving)
            return undecided.oldest(
                isUnsettled: isUndecided,
                unsettled: { (Array(open.values) + Array(resolving.values)).map { ($0.physicalOffset, $0.queueOffset, $0.opsFrom) } },
                unsettledCount: open.count + resolving.count
            ).map { Mark(halfFrom: $0.queueOffset, opsFrom: $0.opsFrom) }
        }

        /// Records how the half message at `offset` ended, forgetting the oldest quarter of
        /// `recent` once it holds `recentLimit`.
        mutating func remember(_ offset: Int64, _ resolution: Resolution) {
            resolving[offset] = nil
            recent[offset] = resolution
            recentOrder.append(offset)
            if recentOrder.count > TransactionService.recentLimit {
                let dropped = recentOrder.prefix(TransactionService.recentLimit / 4)
                for o in dropped { recent[o] = nil }
                recentOrder.removeFirst(dropped.count)
            }
        }
    }

    /// Where the start-up scan of each queue begins.
    struct Mark: Codable, Equatable, Sendable {
        var halfFrom: Int64
        var opsFrom: Int64
    }

    private let state = Mutex(State())
    private let store: MessageStore
    private let logger: Logger
    private let markFile: ScanMark<Mark>
    private static let recentLimit = 65_536
    /// How many of the latest resolutions a start reads back into `recent` at least.
    static let recentRebuilt: Int64 = 4_096

    /// Reads the half and op queues from the saved mark: every half message without an op record
    /// is open again, due for a check at once (its producer may be gone since).
    init(store: MessageStore, logger: Logger) throws(StoreError) {
        self.store = store
        self.logger = logger
        markFile = ScanMark(path: store.configDirectory + "/" + Self.markFile, what: "transaction")
        try reload()
    }

    /// Reads the open transactions again from the saved mark and the log (a promoted slave,
    /// whose log grew by replication): every half message without an op record is open.
    func reload() throws(StoreError) {
        let mark = markFile.read(logger: logger)
        var resolved = Set<Int64>()
        var fresh = State()
        // The op records from the mark on, and at least the last `recentRebuilt` before it:
        // those resolutions are `recent` again, so that a producer repeating its EndTransaction
        // across the restart (its first answer lost) is told it is done, not "already resolved".
        // An op record always means resolved, so reading more of them never opens anything.
        let opsEnd = store.maxOffset(topic: Self.opTopic, queueId: 0)
        try store.forEachMessage(systemTopic: Self.opTopic, from: min(mark?.opsFrom ?? 0, max(0, opsEnd - Self.recentRebuilt))) { message in
            guard let offset = Int64(String(decoding: message.body, as: UTF8.self)) else { return }
            resolved.insert(offset)
            if let resolution = message.properties[StoredProperty.transactionResolution].flatMap(Resolution.init(rawValue:)) {
                fresh.remember(offset, resolution)
            }
        }
        // Every op record of a half message at or past the mark is at or past the mark's op
        // offset, so that stays the bound for the next reads. The op queue's end would skip,
        // at the next start, the records of transactions resolved before this one that lie
        // past an older open one: they would be open again, checked back and committed twice.
        let opsFrom = mark?.opsFrom ?? 0
        try store.forEachMessage(systemTopic: Self.halfTopic, from: mark?.halfFrom ?? 0) { message in
            guard !resolved.contains(message.physicalOffset), let topic = message.properties[StoredProperty.realTopic] else { return }
            fresh.add(Open(
                physicalOffset: message.physicalOffset, queueOffset: message.queueOffset,
                opsFrom: opsFrom, topic: topic, messageId: message.messageId,
                storedAt: Date(timeIntervalSince1970: Double(message.storeTimestamp) / 1000),
                checkAt: Date(timeIntervalSince1970: Double(message.storeTimestamp) / 1000 + Self.recoveryDelay(of: message)), checks: 0),
                track: true)
        }
        state.withLock { s in
            fresh.generation = s.generation + 1
            s = fresh
        }
        if !fresh.open.isEmpty { logger.info("open transactions recovered", metadata: ["count": "\(fresh.open.count)"]) }
    }

    /// Where in the CommitLog the oldest open half message lies, as the saved mark says (see
    /// `DelayService.oldestRecordNeeded`): a commit copies it from its record, so retention
    /// keeps it. nil when no half message is past the mark.
    static func oldestRecordNeeded(in store: MessageStore) -> Int64? {
        let mark = ScanMark<Mark>.peek(store.configDirectory + "/" + markFile)
        return store.physicalOffset(topic: halfTopic, queueId: 0, at: mark?.halfFrom ?? 0)
    }

    /// Saves where the next start's scan may begin, if that moved: the oldest half message open
    /// (or being resolved), else the half queue's end. Skipped while a half message is being
    /// stored (it is in neither place yet). Called by the periodic check.
    func saveMark() {
        let mark: Mark? = state.withLock { s in
            guard s.preparing == 0 else { return nil }
            return s.oldest() ?? Mark(
                halfFrom: store.maxOffset(topic: Self.halfTopic, queueId: 0), opsFrom: store.maxOffset(topic: Self.opTopic, queueId: 0))
        }
        if let mark { markFile.save(mark, logger: logger) }
    }

    /// Seconds from storing a half message to its first check: the producer's
    /// `orphaned_transaction_recovery_duration`, when it gave one.
    private static func recoveryDelay(of message: StoredMessage) -> Double {
        message.properties[StoredProperty.transactionRecoveryMillis].flatMap(Double.init).map { $0 / 1000 } ?? 0
    }

    /// Open transactions now (admin, console, tests).
    var openCount: Int { state.withLock { $0.open.count } }

    /// Keys in the check heap and the mark's offset heap, stale ones included (tests).
    var heapCounts: (check: Int, mark: Int) { state.withLock { ($0.byCheck.count, $0.undecided.count) } }

    // MARK: Half messages

    /// Stores `message` (already validated, queue chosen) as a half message; returns its
    /// transaction id. `firstCheck`: the producer's recovery duration, else the broker's
    /// `transactionTimeout`.
    func prepare(_ message: MessageToAppend, firstCheck: Duration, producerGave: Bool, broker: Broker) async throws(BrokerError) -> String {
        var half = message
        half.properties[StoredProperty.realTopic] = message.topic
        half.properties[StoredProperty.realQueueId] = String(message.queueId)
        half.properties[StoredProperty.deliveryTime] = nil
        if producerGave { half.properties[StoredProperty.transactionRecoveryMillis] = String(firstCheck.wholeMilliseconds) }
        half.topic = Self.halfTopic
        half.queueId = 0
        let (opsFrom, generation) = state.withLock { s in
            s.preparing += 1
            return (store.maxOffset(topic: Self.opTopic, queueId: 0), s.generation)
        }
        let result: AppendResult
        do {
            result = try await store.append(half)
        } catch {
            state.withLock { s in if s.generation == generation { s.preparing -= 1 } }
            throw BrokerError(error)
        }
        let open = Open(
            physicalOffset: result.physicalOffset, queueOffset: result.queueOffset, opsFrom: opsFrom, topic: message.topic,
            messageId: message.properties[MessageProperty.uniqueKey] ?? result.msgId,
            storedAt: Date(timeIntervalSince1970: Double(result.storeTimestamp) / 1000), checkAt: Date() + firstCheck.timeInterval, checks: 0)
        state.withLock { s in
            // After a reload (a promotion) meanwhile, the new state read it from the log if the
            // read came after the append; it is added either way (the same entry).
            s.add(open, track: true)
            if s.generation == generation { s.preparing -= 1 }
        }
        return result.msgId
    }

    // MARK: Ending

    /// Commits or rolls back the half message `transactionId` names, which must be `messageId`
    /// of `topic`.
    func end(
        transactionId: String, messageId: String, topic: String, resolution: Resolution, fromCheck: Bool, broker: Broker
    ) async throws(BrokerError) {
        // Found by the offset the id carries, whatever address it names: the broker's address
        // may have changed since the half message was stored (a restart on another port or
        // host, a container's new IP), and the checks below make sure it is this transaction's.
        guard let offset = MessageID.physicalOffset(of: transactionId), let half = try? store.message(atPhysicalOffset: offset) else {
            throw .invalidTransaction("unknown transaction id \(transactionId.debugDescription)")
        }
        guard half.topic == Self.halfTopic, half.messageId == messageId, half.properties[StoredProperty.realTopic] == topic else {
            throw .invalidTransaction("transaction \(transactionId) is not message \(messageId.debugDescription) of topic \(topic.debugDescription)")
        }
        // A commit of a half message stored before its topic was deleted: the message went with
        // the topic (as its delay messages do), even if a topic of the name exists again. The
        // transaction ends discarded, and the producer is told.
        let discarded = resolution == .commit && store.topicDeletedAt(topic).map { offset < $0 } ?? false
        let resolution = discarded ? .discard : resolution
        // nil: the same resolution again, done already.
        guard let claimed = try await claim(offset, transactionId: transactionId, resolution: resolution) else {
            if discarded { throw Self.deletedTopic(topic, transactionId) }
            return
        }
        // A sync master that stored the real message but saw no slave confirm it still records
        // the commit (else a retry or check-back would store the message again), then reports
        // the replication failure.
        var unreplicated: BrokerError?
        do {
            if resolution == .commit {
                do {
                    var real = Self.committed(half)
                    // Its queue may take no writes any more (the write count lowered meanwhile,
                    // or the queue gone): it goes to a write queue, as a due delay message does.
                    if let topic = broker.topics[real.topic] { real.queueId = topic.writeQueue(for: real.queueId) }
                    _ = try await broker.append(real)
                } catch .noReplica {
                    unreplicated = .noReplica
                } catch .replicationTimeout {
                    unreplicated = .replicationTimeout
                }
            }
            try await writeOp(offset, resolution)
        } catch {
            // Nothing (or only the real message) is recorded: the transaction stays open, and a
            // check-back or a retried EndTransaction resolves it.
            state.withLock { s in
                s.resolving[offset] = nil
                var open = claimed
                open.checkAt = Date()
                s.add(open)
            }
            throw error
        }
        // `open` too: a reload (a promotion) that read the log before this op record has it open.
        state.withLock { s in
            s.open[offset] = nil
            s.remember(offset, resolution)
        }
        logger.debug("transaction ended", metadata: [
            "transaction": "\(transactionId)", "resolution": "\(resolution.rawValue)", "by": "\(fromCheck ? "check-back" : "producer")",
        ])
        if let unreplicated { throw unreplicated }
        if discarded { throw Self.deletedTopic(topic, transactionId) }
    }

    /// INVALID_TRANSACTION_ID, as for any transaction that can no longer be committed: final to
    /// clients, which stop retrying it.
    private static func deletedTopic(_ topic: String, _ transactionId: String) -> BrokerError {
        .invalidTransaction("topic \(topic) was deleted after transaction \(transactionId) began: its message is discarded")
    }

    /// Takes the open half message at `offset` for resolving, or nil if it was already resolved
    /// `resolution`'s way. A resolution under way (a producer's retry racing its first
    /// EndTransaction, or a check-back's answer) is waited for, up to 3 s, and then this one is
    /// judged against it.
    private func claim(_ offset: Int64, transactionId: String, resolution: Resolution) async throws(BrokerError) -> Open? {
        enum Claim { case mine(Open), doneAlready, inProgress }
        for _ in 0..<300 {
            let claim = try state.withLock { (s) throws(BrokerError) -> Claim in
                if s.resolving[offset] != nil { return .inProgress }
                if let open = s.open.removeValue(forKey: offset) {
                    s.resolving[offset] = open
                    return .mine(open)
                }
                guard let earlier = s.recent[offset] else { throw .invalidTransaction("transaction \(transactionId) is already resolved") }
                let same = earlier == resolution || (earlier == .discard && resolution == .rollback)
                if !same { throw .invalidTransaction("transaction \(transactionId) was already resolved as \(earlier.rawValue)") }
                return .doneAlready
            }
            switch claim {
            case .mine(let open): return open
            case .doneAlready: return nil
            case .inProgress: try? await Task.sleep(for: .milliseconds(10))
            }
        }
        throw .busy("transaction \(transactionId) is being resolved right now")
    }

    /// The real message of a committed half message, as its producer sent it.
    static func committed(_ half: StoredMessage) -> MessageToAppend {
        var properties = half.properties
        let topic = properties.removeValue(forKey: StoredProperty.realTopic) ?? half.topic
        let queueId = properties.removeValue(forKey: StoredProperty.realQueueId).flatMap { Int32($0) } ?? 0
        properties[StoredProperty.transactionRecoveryMillis] = nil
        return MessageToAppend(
            topic: topic, queueId: queueId, body: half.body, properties: properties, flags: half.flags,
            bornTimestamp: half.bornTimestamp, bornHost: half.bornHost, reconsumeTimes: 0,
            preparedTransactionOffset: half.physicalOffset)
    }

    private func writeOp(_ offset: Int64, _ resolution: Resolution) async throws(BrokerError) {
        let op = MessageToAppend(
            topic: Self.opTopic, queueId: 0, body: Array(String(offset).utf8),
            properties: [StoredProperty.transactionResolution: resolution.rawValue], bornTimestamp: MessageStore.nowMilliseconds())
        do { _ = try await store.append(op) } catch { throw BrokerError(error) }
    }

    // MARK: Check-back

    /// A check-back to send: the half message as its producer sent it (its real topic and
    /// queue), and the transaction id.
    struct Check: Sendable {
        var transactionId: String
        var message: StoredMessage
    }

    /// `date` in whole milliseconds since the epoch: the check heap's key.
    static func milliseconds(_ date: Date) -> Int64 {
        let ms = (date.timeIntervalSince1970 * 1000).rounded(.down)
        // Clamped: a check time read back from a record must not trap the conversion.
        return ms >= 9.2e18 ? .max : ms <= -9.2e18 ? .min : Int64(ms)
    }

    /// The open transactions due for a check at `now`. Each is rescheduled `interval` later and
    /// counted; one checked `maxChecks` times already is rolled back (discarded) instead.
    /// `canCheck(topic)`: whether a producer of the topic is there to ask; a transaction
    /// without one waits, uncounted, for the next interval, until its half message is older than
    /// `maxAge` (the broker passes the CommitLog's retention, as RocketMQ does): its producers
    /// are gone, and it is discarded rather than kept open (and its record held) for ever.
    func due(now: Date, interval: Duration, maxChecks: Int, maxAge: Duration? = nil, canCheck: (String) -> Bool) async -> [Check] {
        let oldest = maxAge.map { now - $0.timeInterval }
        let nowKey = Self.milliseconds(now)
        let (due, expired) = state.withLock { s -> ([Open], [Open]) in
            var due: [Open] = [], expired: [Open] = [], rescheduled: [Open] = []
            // Keys of transactions resolved before their check stay until their time.
            if s.byCheck.isMostlyStale(liveCount: s.open.count) {
                s.byCheck = Heap(s.open.values.map { HeapKey(value: Self.milliseconds($0.checkAt), id: $0.physicalOffset) })
            }
            while let top = s.byCheck.min, top.value <= nowKey {
                _ = s.byCheck.removeMin()
                guard var open = s.open[top.id], Self.milliseconds(open.checkAt) == top.value else { continue }
                if open.checks >= maxChecks || oldest.map({ open.storedAt < $0 }) == true {
                    s.open[top.id] = nil
                    s.resolving[top.id] = open
                    expired.append(open)
                    continue
                }
                open.checkAt = now + interval.timeInterval
                let checked = canCheck(open.topic)
                if checked { open.checks += 1 }
                // Keyed again after the loop: a key due now again (an interval under 1 ms) is not
                // popped twice in one call.
                rescheduled.append(open)
                if checked { due.append(open) }
            }
            for open in rescheduled { s.add(open) }
            return (due, expired)
        }
        for open in expired {
            logger.warning(
                open.checks >= maxChecks ? "transaction discarded after unanswered check-backs" : "transaction discarded: no producer of its topic came to check it back in time",
                metadata: ["topic": "\(open.topic)", "messageId": "\(open.messageId)", "checks": "\(open.checks)", "storedAt": "\(open.storedAt)"])
            do {
                try await writeOp(open.physicalOffset, .discard)
                state.withLock { s in
                    s.open[open.physicalOffset] = nil
                    s.remember(open.physicalOffset, .discard)
                }
            } catch {
                state.withLock { s in
                    s.resolving[open.physicalOffset] = nil
                    s.add(open)
                }
            }
        }
        return due.compactMap { open in
            guard let half = try? store.message(atPhysicalOffset: open.physicalOffset) else { return nil }
            let real = Self.committed(half)
            var message = half
            message.topic = real.topic
            message.queueId = real.queueId
            message.properties = real.properties
            return Check(transactionId: half.msgId, message: message)
        }
    }
}
