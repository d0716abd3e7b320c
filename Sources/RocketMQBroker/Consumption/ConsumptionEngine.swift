import Foundation
import Logging
import RocketMQStore

/// One message handed to a consumer.
struct Delivery: Sendable {
    var message: StoredMessage
    var handle: ReceiptHandle
    var attempt: Int32
}

/// Pop-style consumption for clustering groups: hands out messages with an invisible duration,
/// remembers them until acked, hands them out again (attempt + 1) when the duration passes, and
/// moves them to `%DLQ%<group>` after the group's last attempt. FIFO groups get at most one
/// message in flight per message group, in queue order. Also keeps the consumer offsets of
/// pull consumers (`committed`).
///
/// An actor: progress changes are serialised; store reads inside it are page-cache `pread`s.
/// Durability: every change is applied, then journaled (`ConsumerJournal`) before the caller
/// is answered; `snapshot()` bounds the replay at start.
actor ConsumptionEngine {
    private let store: MessageStore
    private let journal: ConsumerJournal
    private let brokerName: String
    private let snapshotPath: String
    private let logger: Logger
    /// Moves a message to a group's dead-letter queue (appends it there).
    private let deadLetter: @Sendable (StoredMessage, String) async throws(BrokerError) -> Void
    /// Whether a client still heartbeats, for auto-renewed deliveries.
    private let isClientAlive: @Sendable (String) -> Bool
    /// Longest an auto-renewed delivery stays invisible in total.
    private let maxRenewal: Duration
    private var progress: [ProgressKey: QueueProgress] = [:]
    private var dirty = false
    /// Numbers the snapshots taken, so that the writer never replaces a newer one with an older.
    private var snapshotSequence: UInt64 = 0
    private nonisolated let snapshotWriter: SnapshotWriter
    /// Tests: the writer, to hold its writes.
    nonisolated var snapshotWriterForTesting: SnapshotWriter { snapshotWriter }
    private var nextDeliveryId = UInt64.random(in: 1...(UInt64.max >> 16))
    /// Longest FIFO scan per queue and receive.
    private let fifoScanWindow: Int64 = 4096
    /// How many messages one receive reads from a queue at most while its filter refuses them.
    static let filterScanBudget = 4096

    init(
        store: MessageStore, brokerName: String, logger: Logger, maxRenewal: Duration = .seconds(12 * 3600),
        isClientAlive: @escaping @Sendable (String) -> Bool = { _ in false },
        deadLetter: @escaping @Sendable (StoredMessage, String) async throws(BrokerError) -> Void
    ) throws(BrokerError) {
        self.store = store
        self.isClientAlive = isClientAlive
        self.maxRenewal = maxRenewal
        self.journal = ConsumerJournal(store: store)
        self.brokerName = brokerName
        self.snapshotPath = store.configDirectory + "/consumerProgress.json"
        self.snapshotWriter = SnapshotWriter(path: snapshotPath)
        self.logger = logger
        self.deadLetter = deadLetter
        progress = try Self.load(journal: journal, snapshotPath: snapshotPath, logger: logger)
    }

    /// The progress snapshot, then every journal event after it.
    private static func load(
        journal: ConsumerJournal, snapshotPath: String, logger: Logger, quiet: Bool = false
    ) throws(BrokerError) -> [ProgressKey: QueueProgress] {
        var loaded: [ProgressKey: QueueProgress] = [:]
        var start: Int64 = 0
        if let data = FileManager.default.contents(atPath: snapshotPath) {
            do {
                let snapshot = try JSONDecoder().decode(Snapshot.self, from: data)
                for entry in snapshot.queues { loaded[entry.key] = entry.progress }
                start = snapshot.journalOffset
            } catch {
                throw .badConfigFile(path: snapshotPath, reason: "\(error)")
            }
        }
        let end = try journal.replay(from: start) { event in
            let key: ProgressKey
            switch event {
            case .delivered(let k, _, _), .acked(let k, _), .committed(let k, _, _): key = k
            }
            loaded[key, default: QueueProgress()].apply(event)
        }
        logger.log(level: quiet ? .debug : .info, "consumer progress loaded", metadata: ["queues": "\(loaded.count)", "journalEvents": "\(end - start)"])
        return loaded
    }

    /// Loads the progress again from the snapshot file and the journal, which grew by
    /// replication (a slave following its master, or promoted). With `snapshotDirty` (promotion)
    /// the next `snapshot()` writes this broker's own.
    func reload(snapshotDirty: Bool = true) throws(BrokerError) {
        progress = try Self.load(journal: journal, snapshotPath: snapshotPath, logger: logger, quiet: !snapshotDirty)
        dirty = snapshotDirty
    }

    private struct Snapshot: Codable, Sendable {
        struct Entry: Codable, Sendable {
            var key: ProgressKey
            var progress: QueueProgress
        }
        var journalOffset: Int64
        var queues: [Entry]
    }

    /// Writes the snapshot (atomically) if anything changed since the last one. Only taking it
    /// (a copy of the table and the journal's end, consistent with each other) happens on the
    /// actor; encoding it and the `fsync`s happen off it, so receives and acks do not wait for
    /// the disk (on a slow one a snapshot held every consumer up for ~100 ms every 5 s).
    ///
    /// Exact for concurrent callers: one that finds nothing changed since the last snapshot
    /// taken waits for that snapshot's write (another caller's, perhaps still under way), and
    /// writes the table itself if that write failed. Either way, when it returns, the progress
    /// as it was at the call is on disk.
    nonisolated func snapshot() async throws {
        if let (sequence, snapshot) = await takeSnapshot() {
            return try await write(snapshot, sequence: sequence)
        }
        let taken = await snapshotSequence
        guard await snapshotWriter.drain() < taken, let (sequence, snapshot) = await takeSnapshot(evenIfClean: true) else { return }
        try await write(snapshot, sequence: sequence)
    }

    private nonisolated func write(_ snapshot: Snapshot, sequence: UInt64) async throws {
        do {
            try await snapshotWriter.write(snapshot, sequence: sequence)
        } catch {
            await markDirty()
            throw error
        }
    }

    private func takeSnapshot(evenIfClean: Bool = false) -> (UInt64, Snapshot)? {
        guard dirty || evenIfClean else { return nil }
        dirty = false
        snapshotSequence += 1
        return (snapshotSequence, Snapshot(
            journalOffset: journal.endOffset,
            queues: progress.map { Snapshot.Entry(key: $0.key, progress: $0.value) }))
    }

    private func markDirty() { dirty = true }

    // MARK: Receiving

    /// Hands out up to `batchSize` messages of `topic` from `queueIds` (tried in order), each
    /// invisible for `invisibleDuration`. Empty when nothing is deliverable now.
    func receive(
        group: GroupConfig, topic: String, queueIds: [Int32], batchSize: Int,
        invisibleDuration: Duration, filter: MessageFilter, autoRenewFor clientId: String? = nil
    ) async throws(BrokerError) -> [Delivery] {
        var deliveries: [Delivery] = []
        var events: [ProgressEvent] = []
        var deadLetters: [(ProgressKey, StoredMessage)] = []
        let now = ContinuousClock.now
        let wallNow = MessageStore.nowMilliseconds()
        for queueId in queueIds where deliveries.count < batchSize {
            let key = ProgressKey(group: group.name, topic: topic, queueId: queueId)
            // A queue with nothing for the group now (nothing past its cursor, no delivery
            // expired or delayed message due) is passed over after one lookup, before its state
            // is taken out and put back: most of a topic's queues are empty at most receives.
            let offsets = store.offsetRange(topic: topic, queueId: queueId)
            if !group.fifo, let known = progress[key], !known.mayHaveWork(now: now, offsets: offsets) {
                continue
            }
            let minOffset = offsets.lowerBound
            // Taken out of the table while it changes, so that changing it copies nothing (no
            // `await` until it is back); every change below leaves it consistent, errors included.
            var state = progress.removeValue(forKey: key) ?? QueueProgress(committed: minOffset)
            defer { progress[key] = state }
            dirty = true
            // Retention may have removed what the group never consumed.
            if state.committed < minOffset { state.retentionRemoved(below: minOffset) }

            var blockedGroups = group.fifo ? blockedMessageGroups(state, now: now) : []
            // Messages the filter refuses are done for the group, and they make room: the queue
            // is read on (up to `filterScanBudget` messages per receive), so a selective filter
            // finds its match behind a run of refused messages now, not one batch per long poll.
            var scanned = 0
            state.filterBudgetSpent = false
            scanning: while deliveries.count < batchSize {
                let candidates: [StoredMessage]
                var skipped = 0
                do {
                    candidates = try self.candidates(
                        in: &state, key: key, fifo: group.fifo, limit: batchSize - deliveries.count, tags: filter.tags, skipped: &skipped, now: now)
                } catch {
                    // One unreadable queue must not swallow what other queues already handed out:
                    // those deliveries are in flight and must reach the consumer.
                    logger.error("cannot read a queue for a receive", metadata: ["queue": "\(key)", "error": "\(error)"])
                    if deliveries.isEmpty && queueIds.count == 1 { throw error }
                    break scanning
                }
                scanned += candidates.count + skipped
                var refused = skipped
                for message in candidates {
                    let offset = message.queueOffset
                    // After a restart the cursor restarts at the committed offset; acks above it hold.
                    if state.isDone(offset) { continue }
                    if group.fifo, !message.messageGroup.isEmpty, blockedGroups.contains(message.messageGroup) { continue }
                    if !filter.matches(message) {
                        state.markDone(offset)
                        refused += 1
                        continue
                    }
                    if let deliveryTime = message.deliveryTime, deliveryTime > wallNow {
                        // Delay messages reach their queue when due (see `DelayService`); one
                        // stored here ahead of its time (by a build before that) waits in
                        // flight, not ackable, until it is due.
                        state.setInFlight(offset, .init(
                            deadline: now + .milliseconds(deliveryTime - wallNow), deliveryId: 0, messageGroup: message.messageGroup))
                        if group.fifo { blockedGroups.insert(message.messageGroup) }
                        continue
                    }
                    let attempt = (state.attempts[offset] ?? 0) + 1
                    if attempt > group.maxDeliveryAttempts {
                        state.markDone(offset)
                        deadLetters.append((key, message))
                        events.append(.acked(key, offset: offset))
                        continue
                    }
                    let deliveryId = nextDeliveryId
                    nextDeliveryId &+= 1
                    state.attempts[offset] = attempt
                    state.setInFlight(offset, .init(
                        deadline: now + invisibleDuration, deliveryId: deliveryId, messageGroup: message.messageGroup,
                        renewingClient: clientId, renewPeriod: invisibleDuration,
                        renewUntil: clientId == nil ? nil : now + maxRenewal))
                    if group.fifo { blockedGroups.insert(message.messageGroup) }
                    events.append(.delivered(key, offset: offset, attempt: attempt))
                    deliveries.append(Delivery(
                        message: message,
                        handle: ReceiptHandle(
                            brokerName: brokerName, queueId: queueId, offset: offset, deliveryId: deliveryId,
                            fromRetryTopic: SystemTopic.isRetry(topic)),
                        attempt: attempt))
                    if deliveries.count >= batchSize { break }
                }
                if refused == 0 { break scanning }
                if scanned >= Self.filterScanBudget {
                    state.filterBudgetSpent = true
                    break scanning
                }
            }
        }
        for (key, message) in deadLetters {
            try await deadLetter(message, key.group)
            logger.info("message moved to the dead-letter queue", metadata: [
                "group": "\(key.group)", "topic": "\(key.topic)", "queue": "\(key.queueId)", "offset": "\(message.queueOffset)",
            ])
        }
        try await journal.record(events)
        return deliveries
    }

    /// Messages that may be handed out now, in offset order: expired deliveries first
    /// (redeliveries), then new ones. For FIFO groups, a scan from the committed offset.
    /// New messages are read with the filter's `tags`: the store passes over ConsumeQueue entries
    /// whose tag hash no tag matches without reading their records, and those offsets (counted
    /// in `skipped`) are done for the group, as refused messages are.
    private func candidates(
        in state: inout QueueProgress, key: ProgressKey, fifo: Bool, limit: Int, tags: Set<String>?, skipped: inout Int,
        now: ContinuousClock.Instant
    ) throws(BrokerError) -> [StoredMessage] {
        var result: [StoredMessage] = []
        let expired = state.expiredOffsets(now: now) { flight in
            // Auto-renewed deliveries whose client still heartbeats are extended, not redelivered.
            guard let client = flight.renewingClient, let until = flight.renewUntil, now < until, isClientAlive(client) else { return nil }
            return min(until, now + flight.renewPeriod)
        }
        if fifo {
            // Offsets from `committed` on, skipping done and still-invisible ones; ordering
            // per message group is enforced by the caller.
            var offset = state.committed
            let end = min(store.maxOffset(topic: key.topic, queueId: key.queueId), state.committed + fifoScanWindow)
            while offset < end, result.count < limit * 4 + 16 {
                if state.isDone(offset) { offset += 1; continue }
                if let flight = state.inFlight[offset], flight.deadline > now { offset += 1; continue }
                // Read first: a failed read must leave the entry to be redelivered later.
                let batch = try read(key, from: offset, count: 1).messages
                state.removeInFlight(offset)
                guard let message = batch.first else { offset += 1; continue }
                result.append(message)
                offset = message.queueOffset + 1
            }
            return result
        }
        for offset in expired where result.count < limit {
            let message = try read(key, from: offset, count: 1).messages.first
            state.removeInFlight(offset)
            if let message, message.queueOffset == offset {
                result.append(message)
            }
        }
        if result.count < limit {
            let fresh = try read(key, from: state.cursor, count: limit - result.count, tags: tags)
            // Everything between the cursor and where the read stopped that it did not return,
            // the filter refused (by tag hash, or by tag on a hash collision).
            var offset = state.cursor
            for message in fresh.messages where message.queueOffset >= offset {
                skipped += Int(message.queueOffset - offset)
                state.markDone(offset..<message.queueOffset)
                offset = message.queueOffset + 1
            }
            let end = max(offset, fresh.nextOffset)
            skipped += Int(end - offset)
            state.markDone(offset..<end)
            result += fresh.messages
            state.cursor = max(state.cursor, end)
        }
        return result
    }

    /// Message groups with a message still invisible: FIFO holds their later messages back.
    private func blockedMessageGroups(_ state: QueueProgress, now: ContinuousClock.Instant) -> Set<String> {
        Set(state.inFlight.values.filter { $0.deadline > now && !$0.messageGroup.isEmpty }.map(\.messageGroup))
    }

    /// Up to `count` messages of the queue from `offset`; with `tags`, only those tagged so
    /// (see `MessageStore.messages`: `nextOffset` says how far it read).
    private func read(_ key: ProgressKey, from offset: Int64, count: Int, tags: Set<String>? = nil) throws(BrokerError) -> QueueReadResult {
        do {
            return try store.messages(topic: key.topic, queueId: key.queueId, from: offset, maxCount: count, tagFilter: tags)
        } catch {
            throw BrokerError(error)
        }
    }

    /// How long until the earliest invisible message of `group` on `queueIds` of `topic` becomes
    /// visible, so a long poll can wake for redeliveries; nil when nothing is in flight there.
    /// Zero when the last receive stopped reading a queue at its filter budget
    /// (`filterScanBudget`) with messages left past the group's cursor: no arrival will announce
    /// them, so the long poll reads on at once instead of waiting for its timeout.
    func nextVisibility(group: GroupConfig, topic: String, queueIds: [Int32]) -> Duration? {
        var earliest: ContinuousClock.Instant?
        for queueId in queueIds {
            guard let state = progress[ProgressKey(group: group.name, topic: topic, queueId: queueId)] else { continue }
            if !group.fifo, state.filterBudgetSpent, state.cursor < store.maxOffset(topic: topic, queueId: queueId) { return .zero }
            // Lower bounds: waking early for a deadline already met by an ack costs one receive.
            if let deadline = state.earliestDeadline { earliest = min(earliest ?? deadline, deadline) }
        }
        return earliest.map { max(.zero, $0 - .now) }
    }

    // MARK: Acknowledging

    /// Marks the delivery named by `handle` done. Acking something already done succeeds again.
    /// - Throws: `.invalidReceiptHandle` when the handle is not the current delivery of an unacked message.
    func ack(group: String, topic: String, handle: ReceiptHandle) async throws(BrokerError) {
        if let error = try await ack(group: group, entries: [(topic, handle)]).first ?? nil { throw error }
    }

    /// Acks a batch (one AckMessage request): each entry as `ack(group:topic:handle:)` would, all
    /// journaled in one append. Returns each entry's error (nil: acked), in order.
    /// - Throws: when the journal cannot record the batch (none of it is then answered as acked).
    func ack(group: String, entries: [(topic: String, handle: ReceiptHandle)]) async throws(BrokerError) -> [BrokerError?] {
        var events: [ProgressEvent] = []
        var results: [BrokerError?] = []
        results.reserveCapacity(entries.count)
        // The queue being acked, taken out of the table while its entries are applied: a batch
        // acks what one receive handed out, in runs of one queue, so each run costs one lookup
        // to take the state out and one to put it back (not several per entry, each hashing
        // the group and topic names, with copies of the state in between).
        var openKey: ProgressKey?
        var openState: QueueProgress?
        for (topic, handle) in entries {
            let key = ProgressKey(group: group, topic: topic, queueId: handle.queueId)
            if openKey != key {
                if let openKey, let openState { progress[openKey] = openState }
                openKey = key
                openState = progress.removeValue(forKey: key)
            }
            guard var state = openState else {
                results.append(.invalidReceiptHandle("nothing was delivered to group \(group) from \(topic)/\(handle.queueId)"))
                continue
            }
            openState = nil  // uniquely referenced while it changes: no copy of its tables
            defer { openState = state }
            if state.isDone(handle.offset) {
                results.append(nil)
                continue
            }
            guard let flight = state.inFlight[handle.offset], flight.deliveryId == handle.deliveryId, flight.deliveryId != 0 else {
                results.append(.invalidReceiptHandle("receipt handle \(handle) is not the current delivery of \(topic)/\(handle.queueId)@\(handle.offset): it expired and was redelivered, or its invisible duration was changed"))
                continue
            }
            state.markDone(handle.offset)
            dirty = true
            events.append(.acked(key, offset: handle.offset))
            results.append(nil)
        }
        if let openKey, let openState { progress[openKey] = openState }
        try await journal.record(events)
        return results
    }

    /// Gives the delivery a new invisible duration from now and returns the handle that replaces it.
    func changeInvisibleDuration(group: String, topic: String, handle: ReceiptHandle, duration: Duration) throws(BrokerError) -> ReceiptHandle {
        let key = ProgressKey(group: group, topic: topic, queueId: handle.queueId)
        guard var state = progress[key], var flight = state.inFlight[handle.offset],
              flight.deliveryId == handle.deliveryId, flight.deliveryId != 0 else {
            throw .invalidReceiptHandle("receipt handle \(handle) is not the current delivery of an unacked message")
        }
        flight.deadline = .now + duration
        // An explicit duration (a consumer's retry back-off) replaces auto-renewal.
        flight.renewingClient = nil
        flight.deliveryId = nextDeliveryId
        nextDeliveryId &+= 1
        state.setInFlight(handle.offset, flight)
        progress[key] = state
        var renewed = handle
        renewed.deliveryId = flight.deliveryId
        return renewed
    }

    /// Moves the delivered message to the group's dead-letter queue and marks it done.
    func forwardToDeadLetter(group: String, topic: String, handle: ReceiptHandle) async throws(BrokerError) {
        let key = ProgressKey(group: group, topic: topic, queueId: handle.queueId)
        guard var state = progress[key], let flight = state.inFlight[handle.offset], flight.deliveryId == handle.deliveryId else {
            throw .invalidReceiptHandle("receipt handle \(handle) is not the current delivery of an unacked message")
        }
        guard let message = try read(key, from: handle.offset, count: 1).messages.first, message.queueOffset == handle.offset else {
            throw .invalidReceiptHandle("the message behind \(handle) is no longer stored")
        }
        state.markDone(handle.offset)
        progress[key] = state
        dirty = true
        try await deadLetter(message, group)
        try await journal.record([.acked(key, offset: handle.offset)])
    }

    // MARK: Offsets

    /// The group's consumer offset on a queue (pull consumers, lag); the queue's min offset if it never consumed.
    func consumerOffset(group: String, topic: String, queueId: Int32) -> Int64? {
        progress[ProgressKey(group: group, topic: topic, queueId: queueId)]?.committed
    }

    /// Sets the consumer offset (pull-consumer commit or an admin reset).
    func setConsumerOffset(group: String, topic: String, queueId: Int32, offset: Int64) async throws(BrokerError) {
        let key = ProgressKey(group: group, topic: topic, queueId: queueId)
        var state = progress[key] ?? QueueProgress()
        state.commitEpoch += 1
        state.commit(offset)
        progress[key] = state
        dirty = true
        try await journal.record([.committed(key, offset: offset, epoch: state.commitEpoch)])
    }

    /// Every queue some group has progress in, with its committed offset and the deliveries in
    /// flight (metrics): one hop for all of them.
    func progressSummary() -> [(key: ProgressKey, committed: Int64, inFlight: Int)] {
        progress.map { entry in (entry.key, entry.value.committed, entry.value.deliveredInFlight) }
    }

    /// Messages in flight per queue of a group, for admin views.
    func inFlightCount(group: String, topic: String, queueId: Int32) -> Int {
        progress[ProgressKey(group: group, topic: topic, queueId: queueId)]?.deliveredInFlight ?? 0
    }
}
