import Atomics
import Synchronization

/// A callback kept in a class. A closure kept directly in a `Mutex` and read back with
/// `withLock { $0 }` is re-wrapped in one more reabstraction thunk on every read (the inout
/// write-back), so each call got slower and deeper until the stack overflowed (seen at ~130,000
/// appends); a class reference is read back as it is.
final class OffsetObserver: Sendable {
    let notify: @Sendable (Int64) -> Void
    init(_ notify: @escaping @Sendable (Int64) -> Void) { self.notify = notify }
}

/// Master/slave replication at the store's level: a master reads its log as bytes, a replica
/// appends those bytes at the same offsets and dispatches them as recovery would. The broker
/// carries the bytes between the two (`rocketmq.ha.v1.Replication`).
extension MessageStore {
    /// Whether the log grows only by `appendReplicated` (a slave's store): appends of its own
    /// fail with `StoreError.replica`. Off by default; a promoted slave turns it off. Setting it
    /// takes the writer lock: once set, no append of our own is in progress or can succeed
    /// (what fencing a master needs).
    public var isReplicaLog: Bool {
        get { isReplica.load(ordering: .relaxed) }
        set { writer.withLock { _ in isReplica.store(newValue, ordering: .sequentiallyConsistent) } }
    }

    /// Calls `observer` when `readLog` may have more to serve: after every append (own or
    /// replicated), on the appending thread, and with sync flush after every `fdatasync`, on the
    /// flusher's. Keep it short. One observer; a new one replaces the last.
    public func observeLogGrowth(_ observer: (@Sendable (Int64) -> Void)?) {
        let box = observer.map(OffsetObserver.init)
        growthObserver.withLock { $0 = box }
        hasGrowthObserver.store(observer != nil, ordering: .sequentiallyConsistent)
        if configuration.flushMode == .sync { flushService.flushedObserver.withLock { $0 = box } }
    }

    /// The end of what `readLog` serves: the written position, or with sync flush the flushed
    /// one, so that a slave never holds records its master could lose in a crash (a replica
    /// ahead of its master can no longer follow it).
    public var replicableOffset: Int64 {
        configuration.flushMode == .sync ? commitLog.flushedPosition : commitLog.writtenPosition
    }

    /// Tells the growth observer, if any, that the log now ends at `end`.
    func logGrew(to end: Int64) {
        guard hasGrowthObserver.load(ordering: .relaxed), let observer = growthObserver.withLock({ $0 }) else { return }
        observer.notify(end)
    }

    /// About `maxBytes` of the log from `offset` as its bytes: whole records and end-of-segment
    /// markers, never across a segment boundary, below `replicableOffset` (so dispatched, and
    /// with sync flush on disk). Empty when `offset` is that end. A single record larger than
    /// `maxBytes` comes whole.
    ///
    /// - Throws: `.offsetOutOfRange` when `offset` is below the oldest kept segment or past the
    ///   log's end; `.corruptRecord` if the bytes there are not records.
    public func readLog(from offset: Int64, maxBytes: Int) throws(StoreError) -> [UInt8] {
        guard offset >= commitLog.minOffset, offset <= commitLog.writtenPosition else { throw .offsetOutOfRange(physicalOffset: offset) }
        let end = replicableOffset
        if offset >= end { return [] }
        let limit = min(end, segmentEnd(after: offset))
        var count = Int(min(Int64(max(maxBytes, RecordCodec.blankSize)), limit - offset))
        var bytes = try commitLog.read(at: offset, size: count)
        var whole = 0
        while whole + RecordCodec.blankSize <= bytes.count {
            let peek = bytes.withUnsafeBytes { RecordCodec.peek(UnsafeRawBufferPointer(rebasing: $0[whole..<(whole + RecordCodec.blankSize)])) }
            let size: Int
            switch peek {
            case .message(let s), .endOfSegment(let s): size = s
            case .empty, .invalid: throw .corruptRecord(physicalOffset: offset + Int64(whole), reason: "no record where the log says one is")
            }
            if whole + size > bytes.count {
                // The first record is larger than `maxBytes`: read it whole.
                guard whole == 0, offset + Int64(size) <= limit else { break }
                count = size
                bytes = try commitLog.read(at: offset, size: count)
            }
            whole += size
        }
        guard whole > 0 else { throw .corruptRecord(physicalOffset: offset, reason: "a record runs past the log's end") }
        if whole < bytes.count { bytes.removeSubrange(whole...) }
        return bytes
    }

    /// The end of the segment holding `offset` (segments start at multiples of their size).
    private func segmentEnd(after offset: Int64) -> Int64 {
        let size = configuration.commitLogSegmentSize
        return (offset / size + 1) * size
    }

    /// The last record of the log: the latest ConsumeQueue entry of any queue (every record has
    /// one), with the CRC32C of its bytes. Nil for a log without records.
    public func lastRecord() throws(StoreError) -> (offset: Int64, size: Int, checksum: UInt32)? {
        var last: ConsumeQueueEntry?
        for cq in queues.withLock({ Array($0.values) }) where cq.maxOffset > cq.minOffset {
            if let entry = cq.entry(at: cq.maxOffset - 1), entry.physicalOffset >= last?.physicalOffset ?? -1 { last = entry }
        }
        guard let last else { return nil }
        return (last.physicalOffset, Int(last.size), try recordChecksum(at: last.physicalOffset, size: Int(last.size)))
    }

    /// The CRC32C of the `size` bytes of the log at `offset` (a record: what `lastRecord` gives).
    /// - Throws: `.offsetOutOfRange` when the log holds no such bytes.
    public func recordChecksum(at offset: Int64, size: Int) throws(StoreError) -> UInt32 {
        let bytes = try commitLog.read(at: offset, size: size)
        return bytes.withUnsafeBytes { CRC32C.update(0, $0) }
    }

    /// The start offsets of the log's segments, oldest first. Each starts with a record (or
    /// nothing, the newest one, when the log ends at its start).
    public var commitLogSegmentStarts: [Int64] { commitLog.segmentList.map(\.start) }

    /// The records (offset and size) of the segment starting at `segmentStart`, up to the
    /// log's end (at most `limit`); its end-of-segment marker is left out.
    /// - Throws: `.offsetOutOfRange` for an offset that starts no kept segment; `.corruptRecord`.
    public func records(inSegmentAt segmentStart: Int64, limit: Int = .max) throws(StoreError) -> [(offset: Int64, size: Int)] {
        guard commitLogSegmentStarts.contains(segmentStart) else { throw .offsetOutOfRange(physicalOffset: segmentStart) }
        var out: [(offset: Int64, size: Int)] = []
        let end = segmentEnd(after: segmentStart)
        try walkRecords(from: segmentStart, acrossSegments: false, chunkBytes: limit == 1 ? 1 : 1 << 20) { (offset, size) throws(StoreError) in
            guard offset < end, out.count < limit else { return false }
            out.append((offset, size))
            return true
        }
        return out
    }

    /// Calls `visit` with each record (offset and size) from `offset`, a record boundary, on to
    /// the log's end, reading about `chunkBytes` at a time, until `visit` returns false. An
    /// end-of-segment marker ends the walk unless `acrossSegments`.
    private func walkRecords(
        from offset: Int64, acrossSegments: Bool, chunkBytes: Int = 1 << 20, _ visit: (Int64, Int) throws(StoreError) -> Bool
    ) throws(StoreError) {
        var position = offset
        while true {
            let bytes = try readLog(from: position, maxBytes: chunkBytes)
            if bytes.isEmpty { return }
            var at = 0
            while at + RecordCodec.blankSize <= bytes.count {
                switch bytes.withUnsafeBytes({ RecordCodec.peek(UnsafeRawBufferPointer(rebasing: $0[at..<(at + RecordCodec.blankSize)])) }) {
                case .message(let size):
                    guard try visit(position + Int64(at), size) else { return }
                    at += size
                case .endOfSegment(let size):
                    guard acrossSegments else { return }
                    at += size
                case .empty, .invalid:
                    throw .corruptRecord(physicalOffset: position + Int64(at), reason: "no record where the log says one is")
                }
            }
            position += Int64(bytes.count)
        }
    }

    /// The end of the last record this log shares with another log (the same bytes at the same
    /// offset), nil when they share none. `compare` asks the other log about at most `batch`
    /// records at a time (offset and size; the caller digests their bytes) and answers, in
    /// order, which it holds alike. Two logs that diverged differ from one record on, so a
    /// search finds it: first over the segments' first records, then over the records of the
    /// last segment that starts alike, `batch` probes per round (two or three rounds for a
    /// segment of a million records).
    public func sharedLogEnd(
        batch: Int, compare: ([(offset: Int64, size: Int)]) async throws -> [Bool]
    ) async throws -> Int64? {
        typealias Record = (offset: Int64, size: Int)
        let batch = max(1, batch)
        func same(_ records: [Record]) async throws -> [Bool] {
            var answers: [Bool] = []
            for from in stride(from: 0, to: records.count, by: batch) {
                answers += try await compare(Array(records[from..<min(records.count, from + batch)]))
            }
            return answers
        }
        let firsts = try commitLogSegmentStarts.compactMap { start throws(StoreError) in try records(inSegmentAt: start, limit: 1).first }
        let answers = try await same(firsts)
        // Segments the other log no longer keeps (its retention ran, this log's did not) come
        // first; then those that start alike; then those that do not.
        guard let firstShared = answers.firstIndex(of: true) else { return nil }
        let lastShared = (answers[firstShared...].firstIndex(of: false) ?? answers.count) - 1
        let candidates = try records(inSegmentAt: firsts[lastShared].offset)
        // candidates[lo] is shared; candidates[hi], if there is one, is not.
        var (lo, hi) = (0, candidates.count)
        while hi - lo > 1 {
            let step = (hi - lo + batch) / (batch + 1)  // at most `batch` probes strictly between
            let probes = Array(stride(from: lo + step, to: hi, by: step))
            let answers = try await same(probes.map { candidates[$0] })
            if let miss = answers.firstIndex(of: false) {
                hi = probes[miss]
                if miss > 0 { lo = probes[miss - 1] }
            } else {
                lo = probes.last ?? hi - 1
            }
        }
        return candidates[lo].offset + Int64(candidates[lo].size)
    }

    /// The first record from `offset` (a record boundary) to the log's end whose store host is
    /// not `host`, with its store host; nil when every one is `host`'s. Reads record headers from
    /// `offset` on and stops at that record.
    public func firstRecord(from offset: Int64, storedByOtherThan host: String) throws(StoreError) -> (offset: Int64, storeHost: String)? {
        var found: (offset: Int64, storeHost: String)?
        try walkRecords(from: offset, acrossSegments: true) { (record, size) throws(StoreError) in
            let stored = try commitLog.message(at: record, size: size, includeBody: false).storeHost
            if stored != host { found = (record, stored) }
            return found == nil
        }
        return found
    }

    /// Replicas: cuts the log back to `end`, a record boundary, with the ConsumeQueue entries and
    /// IndexFiles of what is cut off, and writes a checkpoint there: how a slave whose log
    /// diverged from its master's (a former master's unreplicated tail) goes back to the last
    /// record both share, to follow on from it. Readers of a cut-off record get an error.
    /// - Throws: `.replicaDiverged` when the store is not a replica or `end` is no record
    ///   boundary of this log; `.offsetOutOfRange` for an `end` outside it; I/O errors.
    public func truncateReplicatedLog(to end: Int64) throws(StoreError) {
        try writer.withLock { (_) throws(StoreError) in
            guard isReplica.load(ordering: .relaxed) else { throw .replicaDiverged("only a replica's log is cut back") }
            let position = commitLog.writtenPosition
            guard end >= commitLog.minOffset, end <= position else { throw .offsetOutOfRange(physicalOffset: end) }
            if end == position { return }
            if end % configuration.commitLogSegmentSize != 0 {
                // A record must start there (or the segment's end marker): never cut one in two.
                let head = try commitLog.read(at: end, size: RecordCodec.blankSize)
                switch head.withUnsafeBytes({ RecordCodec.peek($0) }) {
                case .message, .endOfSegment: break
                case .empty, .invalid: throw .replicaDiverged("no record starts at \(end)")
                }
            }
            try checkpointing.withLock { (state) throws(StoreError) in
                // First a checkpoint whose scan starts at or below the cut: after a crash half-way
                // recovery must not start past the segments that are left.
                let safe = (try? Checkpoint.load(checkpointPath))??.safeOffset ?? 0
                try Checkpoint(commitLogEnd: end, safeOffset: min(safe, end), cleanShutdown: false, timestamp: MessageStore.nowMilliseconds())
                    .save(checkpointPath)
                try commitLog.truncate(to: end)
                for cq in allQueues() { try cq.truncate(commitLogEnd: end) }
                try index.cut(at: end)
                try writeCheckpointLocked(clean: false, syncIndex: true, state: &state)
            }
            logger.warning("replica log cut back to its master's", metadata: ["from": "\(position)", "to": "\(end)"])
        }
    }

    /// A replica's empty log starts at `offset` (a segment boundary of the master) rather than
    /// 0, because the master no longer keeps the segments before it.
    /// - Throws: `.replicaDiverged` if the log is not empty or `offset` is not a boundary.
    public func startEmptyLog(at offset: Int64) throws(StoreError) {
        try writer.withLock { (_) throws(StoreError) in try commitLog.startEmpty(at: offset) }
    }

    /// Appends records copied from a master's log. `offset` must be this log's end and `bytes`
    /// whole records and end-of-segment markers (what `readLog` returns): each record is
    /// checked (size, magic, CRC32C, its own physical offset) and written at the offset the
    /// master gave it, then dispatched to its ConsumeQueue entry (at the master's queue offset)
    /// and the IndexFile. The segment size must be the master's, so segments roll at the same
    /// offsets. Returns the log's new end. Works whether or not the store `isReplicaLog`.
    ///
    /// - Throws: `.replicaDiverged` when `offset` is not this log's end or a record would land
    ///   elsewhere than on the master; `.corruptRecord` for damaged bytes (nothing after the
    ///   last good record is written); `.diskFull`, `.shutDown`, I/O errors.
    @discardableResult
    public func appendReplicated(_ bytes: [UInt8], at offset: Int64) throws(StoreError) -> Int64 {
        try refuseIfDiskFull()
        var touched = Set<QueueID>()
        let end = try writer.withLock { (state) throws(StoreError) -> Int64 in
            if isShutDown.load(ordering: .relaxed) { throw .shutDown }
            var position = commitLog.writtenPosition
            guard offset == position else {
                throw .replicaDiverged("records for offset \(offset) arrived, the log ends at \(position)")
            }
            var at = 0
            while at < bytes.count {
                guard at + RecordCodec.blankSize <= bytes.count else {
                    throw .corruptRecord(physicalOffset: position, reason: "a partial record header")
                }
                let peek = bytes.withUnsafeBytes { RecordCodec.peek(UnsafeRawBufferPointer(rebasing: $0[at..<(at + RecordCodec.blankSize)])) }
                switch peek {
                case .endOfSegment(let size):
                    let boundary = segmentEnd(after: position)
                    guard position + Int64(size) == boundary else {
                        throw .replicaDiverged("an end-of-segment marker at \(position) ends at \(position + Int64(size)), this log's segment at \(boundary): are the segment sizes equal?")
                    }
                    position = try commitLog.fillSegment()
                    at += size
                case .message(let size):
                    guard at + size <= bytes.count else { throw .corruptRecord(physicalOffset: position, reason: "a partial record") }
                    var record = Array(bytes[at..<(at + size)])
                    let info = try StoreError.catching {
                        try record.withUnsafeBytes { try RecordCodec.dispatchInfo($0, expectedOffset: position) }
                    }
                    let id = QueueID(topic: info.topic, queueId: info.queueId)
                    let created = queues.withLock { $0[id] == nil }
                    guard let cq = try consumeQueue(id, create: true) else { throw .shutDown }
                    try cq.prepare(for: info.queueOffset)
                    let written = try commitLog.append(&record) { _, _ in }
                    guard written == position else {
                        throw .replicaDiverged("the record for offset \(position) landed at \(written): are the segment sizes equal?")
                    }
                    try cq.put(ConsumeQueueEntry(physicalOffset: written, size: info.size, tagsHash: info.keys.tagsHash), at: info.queueOffset)
                    // A queue first seen mid-way (the master dropped its older segments) starts
                    // at its first replicated entry, not at 0.
                    if created, info.queueOffset > 0 { cq.startAt(info.queueOffset) }
                    do {
                        try index.put(info)
                    } catch {
                        logger.error("cannot index replicated message keys", metadata: ["offset": "\(written)", "error": "\(error)"])
                    }
                    state.lastStoreTimestamp = max(state.lastStoreTimestamp, info.storeTimestamp)
                    position = written + Int64(size)
                    commitLog.publish(upTo: position)
                    touched.insert(id)
                    at += size
                case .empty, .invalid:
                    throw .corruptRecord(physicalOffset: position, reason: "replicated bytes are not a record")
                }
            }
            return position
        }
        if end > offset {
            if configuration.flushMode == .async {
                flushService.noteWritten(upTo: end)
            } else {
                flushService.whenFlushed(upTo: end) { _ in }
            }
        }
        for id in touched { notifier.notify(id) }
        logGrew(to: end)
        return end
    }
}
