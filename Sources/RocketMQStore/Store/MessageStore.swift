import Atomics
import Foundation
import Logging
import Synchronization

/// The broker's storage engine: owns the CommitLog, the ConsumeQueues, the IndexFiles, the
/// dispatch from one to the others, the flusher (group commit or async), the checkpoint,
/// crash recovery and retention, all under one data directory it locks.
///
/// A `final class` with locks and dedicated threads, not an actor: appends must serialise
/// on one short critical section (a `pwrite` plus a few memory writes) and reads must run
/// in parallel on any thread, which an actor's single executor would prevent.
///
/// Appends take one writer lock: encode and body CRC outside it; inside it, assign the
/// queue offset and store time, seal the record CRC, write it, append its ConsumeQueue entry
/// and IndexFile keys (dispatch happens inline, so it is in CommitLog order), publish.
/// Reads never take the writer lock.
public final class MessageStore: Sendable {
    public let configuration: StoreConfiguration
    /// `configuration.storeHost` as written into every record.
    private let storeHostBytes: [UInt8]
    /// Retention settings, changeable while the store runs (`updateRetention`); the rest of the
    /// configuration is fixed once the store is open.
    private let retention: Mutex<RetentionPolicy>
    let logger: Logger
    let commitLog: CommitLog
    let index: IndexService
    let flushService: FlushService
    let notifier = QueueNotifier()
    private let directoryLock: DirectoryLock
    let queues = Mutex<[QueueID: ConsumeQueue]>([:])
    /// Per queue, the first offset it may serve, and where deleted topics were deleted (see `QueueFloors`).
    let queueFloors: Mutex<FloorState>
    let writer = Mutex<WriterState>(WriterState())
    /// See `writeCheckpoint(clean:syncIndex:)`; the checkpoint thread's, and recovery's before it.
    private let indexSync = Mutex(IndexSync(due: .now, covered: 0))
    /// Held while a checkpoint is computed and written, so that one computed before a replica's
    /// truncation is never saved after it; guards what checkpoints keep between them.
    let checkpointing = Mutex(CheckpointState())
    /// The directories the last sync of the ConsumeQueues and IndexFiles synced (tests).
    var lastSyncedDirectories: Set<String> { checkpointing.withLock { $0.lastSyncedDirectories } }
    let isShutDown = ManagedAtomic<Bool>(false)
    /// Bit pattern of the disk-use ratio while above the hard limit, 0 otherwise.
    let diskFullRatio = ManagedAtomic<UInt64>(0)
    /// See `isReplicaLog`.
    let isReplica = ManagedAtomic<Bool>(false)
    /// See `observeLogGrowth(_:)`; the flag spares appends the lock while nobody observes.
    let growthObserver = Mutex<OffsetObserver?>(nil)
    let hasGrowthObserver = ManagedAtomic<Bool>(false)
    private let background = Mutex<BackgroundLoop?>(nil)

    struct WriterState: Sendable {
        var lastStoreTimestamp: Int64 = 0
    }

    var consumeQueueRoot: String { configuration.dataDirectory + "/consumequeue" }
    var checkpointPath: String { configuration.dataDirectory + "/checkpoint" }
    /// Where config-like files (topics, offsets...) belong; write them with `AtomicFile.write(_:to:)`.
    public var configDirectory: String { configuration.dataDirectory + "/config" }

    /// Opens (creating if needed) the store in `configuration.dataDirectory`: takes the lock,
    /// recovers (trusting the checkpoint after a clean stop; after a crash, checking every
    /// record from the last safe point, truncating a torn tail and redoing dispatch), and
    /// starts the flusher and the checkpoint/retention thread.
    ///
    /// - Throws: `StoreError.lockHeld` if another process uses the directory; I/O errors.
    public init(configuration: StoreConfiguration, logger: Logger = Logger(label: "rocketmq.store")) throws(StoreError) {
        self.configuration = configuration
        self.storeHostBytes = Array(configuration.storeHost.utf8)
        self.retention = Mutex(RetentionPolicy(
            fileReservedTime: configuration.fileReservedTime, deleteWhenHour: configuration.deleteWhenHour,
            diskCleanRatio: configuration.diskCleanRatio))
        self.logger = logger
        let root = configuration.dataDirectory
        try FileSystem.makeDirectory(root)
        try FileSystem.makeDirectory(root + "/config")
        directoryLock = try DirectoryLock(path: root + "/lock")
        do {
            queueFloors = Mutex(try Self.loadQueueFloors(root + "/config/" + Self.queueFloorsFile))
        } catch {
            directoryLock.release()
            throw error
        }
        let log: CommitLog
        do {
            log = try CommitLog(directory: root + "/commitlog", segmentSize: configuration.commitLogSegmentSize,
                                mappedWrites: configuration.flushMode == .async,
                                pageCacheWindow: configuration.pageCacheWindow,
                                stagedLimit: configuration.syncFlushBacklogLimit, logger: logger)
        } catch {
            directoryLock.release()
            throw error
        }
        commitLog = log
        flushService = FlushService(
            commitLog: log, mode: configuration.flushMode, interval: configuration.flushInterval,
            dirtyPages: configuration.flushDirtyPages, timeout: configuration.groupCommitTimeout, logger: logger)
        do {
            index = try IndexService(directory: root + "/index", slotCount: configuration.indexSlots,
                                     entryCapacity: configuration.indexEntries, logger: logger)
            try recover()
        } catch {
            directoryLock.release()
            throw error
        }
        flushService.start()
        let loop = BackgroundLoop(store: self, interval: configuration.checkpointInterval)
        background.withLock { $0 = loop }
        loop.start()
    }

    // MARK: Recovery

    private func recover() throws(StoreError) {
        let started = ContinuousClock.now
        let checkpoint: Checkpoint?
        do {
            checkpoint = try Checkpoint.load(checkpointPath)
        } catch {
            // Written atomically, so this is outside damage: scanning everything is still safe.
            logger.warning("ignoring unreadable checkpoint: full recovery scan", metadata: ["error": "\(error)"])
            checkpoint = nil
        }
        var redoStart: Int64
        if let checkpoint, checkpoint.cleanShutdown {
            redoStart = checkpoint.commitLogEnd
        } else if let checkpoint {
            let size = configuration.commitLogSegmentSize
            redoStart = checkpoint.safeOffset / size * size
        } else {
            redoStart = 0
        }
        // ConsumeQueues: find each one's end; damaged ones force an earlier redo.
        for topic in FileSystem.list(consumeQueueRoot) {
            for q in FileSystem.list(consumeQueueRoot + "/" + topic) {
                guard let queueId = Int32(q) else { continue }
                let cq = ConsumeQueue(id: QueueID(topic: topic, queueId: queueId), root: consumeQueueRoot,
                                      entriesPerFile: configuration.consumeQueueFileEntries)
                let result = try cq.load(
                    maxRecordSize: configuration.maxMessageSize, synced: checkpoint?.cleanShutdown ?? false, floor: queueFloor(cq.id))
                if result.suspicious {
                    logger.warning("damaged ConsumeQueue, redoing its dispatch", metadata: ["queue": "\(cq.id)", "from": "\(result.lastEntryEnd)"])
                    redoStart = min(redoStart, result.lastEntryEnd)
                }
                queues.withLock { $0[cq.id] = cq }
            }
        }
        let indexFloor = index.lastIndexedOffset
        // A file's header can count entries that never reached the disk: after a power cut, the
        // kernel may have written the header's page back and not those of the newest entries.
        // Only what the checkpoint covers was synced, so the keys of every record from its safe
        // offset up to what the headers claim are looked up, and those missing indexed again.
        // A clean shutdown synced everything; without a checkpoint nothing is known.
        let indexSynced = checkpoint.map { $0.cleanShutdown ? Int64.max : $0.safeOffset } ?? 0
        if index.damaged {
            // Re-index from the segment holding the last record the surviving files cover.
            let size = configuration.commitLogSegmentSize
            redoStart = min(redoStart, max(0, indexFloor) / size * size)
        }
        redoStart = max(redoStart, commitLog.minOffset)
        var gaps = [QueueID: Int64]()
        var lastStoreTimestamp: Int64 = 0
        var redone = 0
        let end = try commitLog.recover(
            from: redoStart, synced: checkpoint?.commitLogEnd ?? 0, force: configuration.forceRecovery
        ) { (info) throws(StoreError) in
            guard let cq = try consumeQueue(QueueID(topic: info.topic, queueId: info.queueId), create: true) else { return }
            if info.queueOffset > cq.maxOffset, gaps[cq.id] == nil {
                let before = cq.maxOffset > 0 ? cq.entry(at: cq.maxOffset - 1).map { $0.physicalOffset } ?? 0 : 0
                gaps[cq.id] = before
            }
            try cq.put(ConsumeQueueEntry(physicalOffset: info.physicalOffset, size: info.size, tagsHash: info.keys.tagsHash), at: info.queueOffset)
            if info.physicalOffset > indexFloor {
                try index.put(info)
            } else if info.physicalOffset >= indexSynced {
                try index.putMissing(info)
            }
            lastStoreTimestamp = max(lastStoreTimestamp, info.storeTimestamp)
            redone += 1
        }
        if let rescan = gaps.values.min() {
            // A queue lost entries below the redo start (a torn ConsumeQueue file): refill them.
            logger.warning("ConsumeQueue gaps found, redoing dispatch", metadata: ["from": "\(rescan)", "queues": "\(gaps.count)"])
            let refill = Set(gaps.keys)
            _ = try commitLog.recover(from: max(rescan, commitLog.minOffset)) { (info) throws(StoreError) in
                let id = QueueID(topic: info.topic, queueId: info.queueId)
                guard refill.contains(id) else { return }
                try consumeQueue(id, create: true)?.put(
                    ConsumeQueueEntry(physicalOffset: info.physicalOffset, size: info.size, tagsHash: info.keys.tagsHash), at: info.queueOffset)
            }
        }
        let minOffset = commitLog.minOffset
        for cq in allQueues() {
            try cq.truncate(commitLogEnd: end)
            try cq.dropEntries(below: minOffset)
        }
        try index.cut(at: end)
        writer.withLock { $0.lastStoreTimestamp = lastStoreTimestamp }
        try commitLog.flush()
        try writeCheckpoint(clean: false, syncIndex: true)
        logger.info("store recovered", metadata: [
            "clean": "\(checkpoint?.cleanShutdown ?? false)", "from": "\(redoStart)", "end": "\(end)",
            "redispatched": "\(redone)", "elapsed": "\(ContinuousClock.now - started)",
        ])
    }

    @discardableResult
    func consumeQueue(_ id: QueueID, create: Bool) throws(StoreError) -> ConsumeQueue? {
        if let cq = queues.withLock({ $0[id] }) { return cq }
        guard create else { return nil }
        guard !id.topic.isEmpty, !id.topic.contains("/"), id.topic != ".", id.topic != "..", id.queueId >= 0 else {
            throw .invalidMessage("topic \"\(id.topic)\" / queue \(id.queueId) cannot name a ConsumeQueue")
        }
        let cq = ConsumeQueue(id: id, root: consumeQueueRoot, entriesPerFile: configuration.consumeQueueFileEntries)
        // A deleted topic's queue made again (a new message, recovery) starts at its floor.
        cq.raiseFloor(to: queueFloor(id))
        return queues.withLock { map in
            if let existing = map[id] { return existing }
            map[id] = cq
            return cq
        }
    }

    func allQueues() -> [ConsumeQueue] { queues.withLock { Array($0.values) } }

    // MARK: Appending

    /// Appends one message and returns where it went once the flush policy holds: after the
    /// page-cache write (async flush) or after an `fdatasync` covering it (sync flush).
    ///
    /// - Throws: `StoreError.diskFull` past the hard disk ratio, `.flushTimeout` if sync
    ///   flush does not complete in time (the record may still be on disk later),
    ///   `.messageTooLarge`, `.invalidMessage`, `.shutDown`, I/O errors.
    public func append(_ message: MessageToAppend) async throws(StoreError) -> AppendResult {
        try await append(try encode(message))
    }

    /// Appends a message encoded by `encode(topic:queueId:bornTimestamp:bornHost:properties:body:)`;
    /// otherwise as `append(_: MessageToAppend)`.
    public func append(_ message: EncodedMessage) async throws(StoreError) -> AppendResult {
        try await appendReportingWrite(message, onWritten: { _ in })
    }

    /// `append(_: EncodedMessage)` that tells `onWritten` where the record went as soon as it is
    /// written, before it waits for the flush: a caller that keeps track of its records (the
    /// broker's delay schedule) then knows of one whose flush times out, which is in the log
    /// all the same.
    public func appendReportingWrite(_ message: EncodedMessage, onWritten: (AppendResult) -> Void) async throws(StoreError) -> AppendResult {
        if let result = try appendWithoutWaiting(message) {
            onWritten(result)
            return result
        }
        let result = try write(message)
        onWritten(result)
        try await flushService.waitForFlush(upTo: result.physicalOffset + Int64(result.wroteBytes))
        return result
    }

    /// `append(_: EncodedMessage)` with its outcome passed to `completion` instead of awaited,
    /// for a caller that answers from a callback rather than a task (the broker's sends).
    /// `completion` runs once: on this thread when the append is done or fails at once (async
    /// flush, a refused message), otherwise on the flusher's thread after the `fdatasync` that
    /// covers it (sync flush), so it should be short.
    public func append(_ message: EncodedMessage, completion: @escaping @Sendable (Result<AppendResult, StoreError>) -> Void) {
        append(message, onWritten: { _ in }, completion: completion)
    }

    /// `append(_:completion:)` that first tells `onWritten` (on this thread) where the record
    /// went once it is written: a failure `completion` gets after that (a flush that failed or
    /// timed out) leaves the record in the log.
    public func append(
        _ message: EncodedMessage, onWritten: (AppendResult) -> Void, completion: @escaping @Sendable (Result<AppendResult, StoreError>) -> Void
    ) {
        let result: AppendResult
        do {
            if let done = try appendWithoutWaiting(message) {
                onWritten(done)
                return completion(.success(done))
            }
            result = try write(message)
        } catch {
            return completion(.failure(error))
        }
        onWritten(result)
        flushService.whenFlushed(upTo: result.physicalOffset + Int64(result.wroteBytes)) { failure in
            completion(failure.map { .failure($0) } ?? .success(result))
        }
    }

    /// Appends `messages` in order, each written before any waits for its flush: with sync flush
    /// one `fdatasync` then covers them all, where appending one after the other, each waiting
    /// for its own, took one each. Unlike `append(batch:)`, each message stands alone: a refusal
    /// keeps those before it. `onWritten` and `completion` are as for
    /// `append(_:onWritten:completion:)`, with the message's index. A message refused (a full
    /// disk) ends the run: the ones after it are not written (they would follow a gap) and get
    /// its error.
    public func append(
        inOrder messages: [EncodedMessage], onWritten: (Int, AppendResult) -> Void,
        completion: @escaping @Sendable (Int, Result<AppendResult, StoreError>) -> Void
    ) {
        var written: [(index: Int, result: AppendResult)] = []
        written.reserveCapacity(messages.count)
        var refusal: StoreError?
        for (index, message) in messages.enumerated() {
            if let refusal {
                completion(index, .failure(refusal))
                continue
            }
            do {
                if let done = try appendWithoutWaiting(message) {
                    onWritten(index, done)
                    completion(index, .success(done))
                    continue
                }
                let result = try write(message)
                onWritten(index, result)
                written.append((index, result))
            } catch {
                refusal = error
                completion(index, .failure(error))
            }
        }
        for (index, result) in written {
            flushService.whenFlushed(upTo: result.physicalOffset + Int64(result.wroteBytes)) { failure in
                completion(index, failure.map { .failure($0) } ?? .success(result))
            }
        }
    }

    /// Appends `messages` as one batch: all of them, or none, as RocketMQ stores a batch. Every
    /// check that can refuse one (its size, a full disk, the sync-flush backlog, a new segment
    /// or the blocks under the records and their queue entries, the current IndexFile's room for
    /// their keys) runs before the first record is written, and the records go into one segment,
    /// one after the other, so that one flush covers them. (As for a single message, an index
    /// entry that fails later is logged, not refused: the message is stored, only a key lookup
    /// misses it.) All or none holds while the store runs: a crash in the middle of the batch's
    /// write to disk may leave the records before some point, which recovery keeps, as it keeps
    /// every whole record; their sender was not told they were stored, and sends them again. `onWritten` (on this thread) and `completion` are as for
    /// `append(_:onWritten:completion:)`, with every message's result in order: a failure after
    /// `onWritten` (a flush that failed or timed out) leaves the whole batch in the log.
    /// - Throws: (through `completion`) `.messageTooLarge` too for records that together do not
    ///   fit in one segment.
    public func append(
        batch messages: [EncodedMessage], onWritten: ([AppendResult]) -> Void,
        completion: @escaping @Sendable (Result<[AppendResult], StoreError>) -> Void
    ) {
        let results: [AppendResult]
        do {
            results = try write(batch: messages)
        } catch {
            return completion(.failure(error))
        }
        onWritten(results)
        guard let last = results.last else { return completion(.success(results)) }
        let end = last.physicalOffset + Int64(last.wroteBytes)
        if appendsCompleteWhenWritten {
            flushService.noteWritten(upTo: end)
            return completion(.success(results))
        }
        flushService.whenFlushed(upTo: end, appends: results.count) { failure in
            completion(failure.map { .failure($0) } ?? .success(results))
        }
    }

    /// Refuses, as an append would (`.messageTooLarge`), a record larger than the store takes:
    /// callers that store several together check them all before writing any.
    public func checkSize(_ message: EncodedMessage) throws(StoreError) {
        let size = message.record.count
        guard size <= configuration.maxMessageSize, Int64(size) + Int64(RecordCodec.blankSize) <= configuration.commitLogSegmentSize else {
            throw .messageTooLarge(size: size, limit: configuration.maxMessageSize)
        }
    }

    /// Whether an append is done once written (async flush), so `appendWithoutWaiting` applies.
    public var appendsCompleteWhenWritten: Bool { configuration.flushMode == .async }

    /// `append(_: EncodedMessage)` for an async-flush store, which never has to wait: the same
    /// result, without suspending (a caller that answers a request can do so at once).
    /// `nil` on a sync-flush store, whose appends wait for `fdatasync`: use `append` there.
    public func appendWithoutWaiting(_ message: EncodedMessage) throws(StoreError) -> AppendResult? {
        guard appendsCompleteWhenWritten else { return nil }
        let result = try write(message)
        flushService.noteWritten(upTo: result.physicalOffset + Int64(result.wroteBytes))
        return result
    }

    /// `message` as a record, for `append(_: EncodedMessage)`.
    public func encode(_ message: MessageToAppend) throws(StoreError) -> EncodedMessage {
        EncodedMessage(
            record: try RecordCodec.encode(message, storeHost: configuration.storeHost), topic: message.topic,
            queueId: message.queueId)
    }

    /// Encodes a message given as UTF-8 pieces into its CommitLog record, without building
    /// `String`s or a properties dictionary: the fast way in for a protocol layer that has the
    /// message as bytes. The result reads back as the `MessageToAppend` with the same fields
    /// (flags, reconsume times and prepared-transaction offset zero) would; with ASCII
    /// property keys, the record is the same byte for byte. `properties` is sorted in place;
    /// keys must be distinct. Encoding checks what `append(_: MessageToAppend)` checks.
    public func encode(
        topic: String, queueId: Int32, bornTimestamp: Int64, bornHost: UnsafeRawBufferPointer,
        properties: UnsafeMutableBufferPointer<MessagePropertyBytes>, body: UnsafeRawBufferPointer
    ) throws(StoreError) -> EncodedMessage {
        var topicName = topic
        let record = try StoreError.catching {
            try topicName.withUTF8 { topicBytes in
                try storeHostBytes.withUnsafeBytes { storeHost in
                    try RecordCodec.encode(
                        topic: UnsafeRawBufferPointer(topicBytes), queueId: queueId, bornTimestamp: bornTimestamp,
                        bornHost: bornHost, storeHost: storeHost, properties: properties, body: body)
                }
            }
        }
        return EncodedMessage(record: record, topic: topic, queueId: queueId)
    }

    /// Writes and dispatches one record (no flush wait).
    func write(_ message: MessageToAppend) throws(StoreError) -> AppendResult {
        try write(try encode(message))
    }

    /// Writes and dispatches one record (no flush wait).
    func write(_ message: EncodedMessage) throws(StoreError) -> AppendResult {
        try refuseIfDiskFull()
        try checkSize(message)
        var record = message.record
        let id = QueueID(topic: message.topic, queueId: message.queueId)
        let size = Int32(record.count)
        let keys = record.withUnsafeBytes { RecordCodec.dispatchKeys($0) }
        let storeHost = configuration.storeHost
        let result = try writer.withLock { (state) throws(StoreError) -> AppendResult in
            try refuseUnlessTakingWrites()
            guard let cq = try consumeQueue(id, create: true) else { throw .shutDown }
            let queueOffset = cq.maxOffset
            // Everything that can fail happens before the record is written: once it is in
            // the CommitLog, its ConsumeQueue entry must follow.
            try cq.prepare(for: queueOffset)
            let storeTimestamp = max(MessageStore.nowMilliseconds(), state.lastStoreTimestamp)
            try reserveIndex(keys.indexHashes, storeTimestamp: storeTimestamp)
            state.lastStoreTimestamp = storeTimestamp
            let physicalOffset = try commitLog.append(&record) { raw, offset in
                RecordCodec.seal(raw, queueOffset: queueOffset, physicalOffset: offset, storeTimestamp: storeTimestamp)
            }
            let result = try dispatch(
                size: size, at: physicalOffset, to: cq, queueOffset: queueOffset, keys: keys, storeTimestamp: storeTimestamp,
                storeHost: storeHost)
            configuration.afterDispatchForTesting?(self)
            commitLog.publish(upTo: physicalOffset + Int64(size))
            return result
        }
        notifier.notify(id)
        logGrew(to: result.physicalOffset + Int64(result.wroteBytes))
        return result
    }

    /// Writes and dispatches `messages` as a batch (no flush wait): all, or none and an error.
    func write(batch messages: [EncodedMessage]) throws(StoreError) -> [AppendResult] {
        guard !messages.isEmpty else { return [] }
        try refuseIfDiskFull()
        for message in messages { try checkSize(message) }
        var records = messages.map(\.record)
        let keys = records.map { record in record.withUnsafeBytes { RecordCodec.dispatchKeys($0) } }
        let ids = messages.map { QueueID(topic: $0.topic, queueId: $0.queueId) }
        let storeHost = configuration.storeHost
        let results = try writer.withLock { (state) throws(StoreError) -> [AppendResult] in
            try refuseUnlessTakingWrites()
            // As in `write(_:)`, everything that can fail comes first; here, for every record.
            var queues: [(queue: ConsumeQueue, offset: Int64)] = []
            queues.reserveCapacity(ids.count)
            var next: [QueueID: Int64] = [:]
            for id in ids {
                guard let cq = try consumeQueue(id, create: true) else { throw .shutDown }
                let queueOffset = next[id] ?? cq.maxOffset
                try cq.prepare(for: queueOffset)
                next[id] = queueOffset + 1
                queues.append((cq, queueOffset))
            }
            let storeTimestamp = max(MessageStore.nowMilliseconds(), state.lastStoreTimestamp)
            try reserveIndex(keys.flatMap(\.indexHashes), storeTimestamp: storeTimestamp)
            state.lastStoreTimestamp = storeTimestamp
            let offsets = try commitLog.append(batch: &records) { i, raw, offset in
                RecordCodec.seal(raw, queueOffset: queues[i].offset, physicalOffset: offset, storeTimestamp: storeTimestamp)
            }
            var results: [AppendResult] = []
            results.reserveCapacity(offsets.count)
            for (i, physicalOffset) in offsets.enumerated() {
                results.append(try dispatch(
                    size: Int32(records[i].count), at: physicalOffset, to: queues[i].queue, queueOffset: queues[i].offset,
                    keys: keys[i], storeTimestamp: storeTimestamp, storeHost: storeHost))
            }
            configuration.afterDispatchForTesting?(self)
            if let last = results.last { commitLog.publish(upTo: last.physicalOffset + Int64(last.wroteBytes)) }
            return results
        }
        for id in Set(ids) { notifier.notify(id) }
        if let last = results.last { logGrew(to: last.physicalOffset + Int64(last.wroteBytes)) }
        return results
    }

    /// Refuses an append past the hard disk-use ratio (checked every 10 s by the background loop).
    func refuseIfDiskFull() throws(StoreError) {
        let full = diskFullRatio.load(ordering: .relaxed)
        if full != 0 { throw .diskFull(usedRatio: Double(bitPattern: full)) }
    }

    /// Refuses an append of our own once the store is shut down or its log is a replica's.
    /// Under the writer lock: once `isReplicaLog` is set, no append of our own follows.
    @inline(__always)
    private func refuseUnlessTakingWrites() throws(StoreError) {
        if isShutDown.load(ordering: .relaxed) { throw .shutDown }
        if isReplica.load(ordering: .relaxed) { throw .replica }
    }

    /// Reserves the index blocks for keys stored at `storeTimestamp`, before their record is
    /// written. Under the writer lock. A full disk refuses the message: acknowledged, it would
    /// miss its keys. Other index failures do not (`put` then fails again and is logged).
    @inline(__always)
    private func reserveIndex(_ hashes: [UInt32], storeTimestamp: Int64) throws(StoreError) {
        do throws(StoreError) {
            try index.reserve(hashes, storeTimestamp: storeTimestamp)
        } catch {
            if case .diskFull = error { throw error }
        }
    }

    /// Dispatches a record just written at `physicalOffset`: its ConsumeQueue entry (prepared
    /// before the write, so it cannot fail for want of space) and its keys. Under the writer lock.
    @inline(__always)
    private func dispatch(
        size: Int32, at physicalOffset: Int64, to cq: ConsumeQueue, queueOffset: Int64, keys: RecordCodec.DispatchKeys,
        storeTimestamp: Int64, storeHost: String
    ) throws(StoreError) -> AppendResult {
        try cq.put(ConsumeQueueEntry(physicalOffset: physicalOffset, size: size, tagsHash: keys.tagsHash), at: queueOffset)
        do {
            try index.put(keys.indexHashes, physicalOffset: physicalOffset, storeTimestamp: storeTimestamp)
        } catch {
            // The record and its queue entry are in: keep them; only key lookups miss it.
            logger.error("cannot index message keys", metadata: ["offset": "\(physicalOffset)", "error": "\(error)"])
        }
        return AppendResult(
            physicalOffset: physicalOffset, queueOffset: queueOffset, wroteBytes: size, storeTimestamp: storeTimestamp,
            storeHost: storeHost)
    }

    /// Wall-clock milliseconds since 1970, as message timestamps (born, store, delivery) count.
    public static func nowMilliseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    // MARK: Reading

    /// Messages of `topic`/`queueId` from queue offset `from` (clamped up to the min offset):
    /// at most `maxCount` messages and about `maxBytes` bytes (at least one message is
    /// returned if any matches). With `tagFilter`, only messages whose tag is in the set
    /// (checked by ConsumeQueue tag hash, then on the message itself); with `predicate`, only
    /// messages it accepts (a property filter, checked on each message read).
    ///
    /// - Throws: `StoreError.corruptRecord` rather than ever returning a damaged record.
    public func messages(
        topic: String, queueId: Int32, from: Int64, maxCount: Int = 32, maxBytes: Int = 4 << 20,
        tagFilter: Set<String>? = nil, where predicate: ((StoredMessage) -> Bool)? = nil
    ) throws(StoreError) -> QueueReadResult {
        guard let cq = try consumeQueue(QueueID(topic: topic, queueId: queueId), create: false) else {
            return QueueReadResult(messages: [], nextOffset: 0, minOffset: 0, maxOffset: 0)
        }
        let hashes = tagFilter.map { Set($0.map { TagHash.of($0) }) }
        var offset = max(from, cq.minOffset)
        let maxOffset = cq.maxOffset
        // With sync flush, only records already on disk: a record still staged for the flusher
        // dies with the process, and its queue offset would then be given to another message,
        // which a consumer that had read the first would skip. Its sender is answered after
        // the same fdatasync, so nothing becomes visible later than it becomes acknowledged.
        let visibleEnd = configuration.flushMode == .sync ? commitLog.flushedPosition : .max
        var found = [StoredMessage]()
        var bytes = 0
        var examined = 0
        while offset < maxOffset, found.count < maxCount, examined < 65_536 {
            examined += 1
            guard let entry = cq.entry(at: offset) else { offset += 1; continue }
            if entry.recordEnd > visibleEnd { break }
            if let hashes, !hashes.contains(entry.tagsHash) { offset += 1; continue }
            if !found.isEmpty && bytes + Int(entry.size) > maxBytes { break }
            let message: StoredMessage
            do {
                message = try commitLog.message(at: entry.physicalOffset, size: Int(entry.size))
            } catch {
                // Retention deleted the segment under us: the entry is gone, move on.
                if case .offsetOutOfRange = error, entry.physicalOffset < commitLog.minOffset { offset += 1; continue }
                throw error
            }
            // A sound record of another queue (an entry a torn ConsumeQueue page brought back,
            // say) passes its own checks; it must not be served as this queue's.
            guard message.queueId == queueId, message.queueOffset == offset, message.topic == topic else {
                throw .corruptRecord(physicalOffset: entry.physicalOffset, reason: "ConsumeQueue \(topic)/\(queueId) entry \(offset) points at "
                    + "the record of \(message.topic)/\(message.queueId) entry \(message.queueOffset)")
            }
            offset += 1
            if let tagFilter, !tagFilter.contains(message.tags ?? "") { continue }
            if let predicate, !predicate(message) { continue }
            bytes += Int(entry.size)
            found.append(message)
        }
        return QueueReadResult(messages: found, nextOffset: offset, minOffset: cq.minOffset, maxOffset: cq.maxOffset)
    }

    /// The message whose record starts at `physicalOffset`.
    /// - Throws: `.offsetOutOfRange` if nothing starts there, `.corruptRecord` if it fails its checks.
    public func message(atPhysicalOffset physicalOffset: Int64) throws(StoreError) -> StoredMessage {
        try commitLog.message(at: physicalOffset)
    }

    /// The message with this offset message id (`AppendResult.msgId`, `StoredMessage.msgId`).
    /// The id must name the store host written into the record, not this store's current one:
    /// a broker that restarted on another address, or a slave holding its master's records
    /// (promoted or not), still finds the ids it handed out, or its master did.
    /// - Throws: `.offsetOutOfRange` if the id is malformed, points nowhere, or names another
    ///   host than the record's; `.corruptRecord` if the record fails its checks.
    public func message(msgId: String) throws(StoreError) -> StoredMessage {
        guard let offset = MessageID.physicalOffset(of: msgId) else { throw .offsetOutOfRange(physicalOffset: -1) }
        let message = try commitLog.message(at: offset)
        guard message.msgId == msgId.uppercased() else { throw .offsetOutOfRange(physicalOffset: offset) }
        return message
    }

    /// Messages of `topic` carrying `key` in KEYS, stored between `from` and `to` (ms since
    /// the epoch, inclusive), newest first, at most `maxCount`.
    public func messages(key: String, topic: String, from: Int64 = 0, to: Int64 = .max, maxCount: Int = 32) -> [StoredMessage] {
        let candidates = index.lookup(IndexService.key(topic: topic, key: key), from: from, to: to, limit: maxCount)
        var out = [StoredMessage]()
        for offset in candidates where out.count < maxCount {
            // Candidates can be hash collisions or stale entries left by a crash: check each.
            guard let m = try? commitLog.message(at: offset), m.topic == topic, m.keys.contains(key),
                  m.storeTimestamp >= from, m.storeTimestamp <= to
            else { continue }
            out.append(m)
        }
        return out
    }

    /// The newest message whose UNIQ_KEY is `uniqueId`, if any.
    public func message(uniqueId: String) -> StoredMessage? {
        messages(uniqueId: uniqueId, maxCount: 1).first
    }

    /// Messages whose UNIQ_KEY is `uniqueId`, newest first: a message and the copies the broker
    /// made of it (retry and dead-letter topics keep the id). Index hits of other ids (hash
    /// collisions) are read and skipped, a few beyond `maxCount` at most.
    public func messages(uniqueId: String, maxCount: Int) -> [StoredMessage] {
        var found = [StoredMessage]()
        for offset in index.lookup(IndexService.uniqueKey(uniqueId), from: 0, to: .max, limit: maxCount + 3) where found.count < maxCount {
            if let m = try? commitLog.message(at: offset), m.uniqueId == uniqueId { found.append(m) }
        }
        return found
    }

    /// First queue offset still readable in `topic`/`queueId` (0 for an unknown queue).
    public func minOffset(topic: String, queueId: Int32) -> Int64 {
        queues.withLock { $0[QueueID(topic: topic, queueId: queueId)] }?.minOffset ?? 0
    }

    /// One past the last queue offset in `topic`/`queueId` (0 for an unknown queue).
    public func maxOffset(topic: String, queueId: Int32) -> Int64 {
        queues.withLock { $0[QueueID(topic: topic, queueId: queueId)] }?.maxOffset ?? 0
    }

    /// Where the message at `queueOffset` of the queue (or, below the queue's first kept
    /// offset, its first kept message) lies in the CommitLog; nil past the queue's end.
    public func physicalOffset(topic: String, queueId: Int32, at queueOffset: Int64) -> Int64? {
        guard let cq = queues.withLock({ $0[QueueID(topic: topic, queueId: queueId)] }) else { return nil }
        return cq.entry(at: max(queueOffset, cq.minOffset))?.physicalOffset
    }

    /// `minOffset` and `maxOffset` with one lookup (empty at 0 for an unknown queue).
    public func offsetRange(topic: String, queueId: Int32) -> Range<Int64> {
        guard let cq = queues.withLock({ $0[QueueID(topic: topic, queueId: queueId)] }) else { return 0..<0 }
        let (min, max) = (cq.minOffset, cq.maxOffset)
        return min..<Swift.max(min, max)
    }

    /// The first queue offset whose message was stored at or after `timestamp` (ms since the
    /// epoch); `maxOffset` if none was. Binary search over store times, for offset resets.
    public func queueOffset(topic: String, queueId: Int32, forTimestamp timestamp: Int64) throws(StoreError) -> Int64 {
        guard let cq = queues.withLock({ $0[QueueID(topic: topic, queueId: queueId)] }) else { return 0 }
        var low = cq.minOffset
        var high = cq.maxOffset
        while low < high {
            let mid = low + (high - low) / 2
            guard let e = cq.entry(at: mid) else { low = mid + 1; continue }
            let t: Int64
            do { t = try commitLog.storeTimestamp(at: e.physicalOffset) } catch {
                if case .offsetOutOfRange = error { low = mid + 1; continue }
                throw error
            }
            if t < timestamp { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// Long-poll: returns true as soon as `topic`/`queueId` has a message at or past `offset`
    /// (i.e. max offset > `offset`), false if `timeout` passes first or the store shuts down.
    public func waitForNewMessages(topic: String, queueId: Int32, after offset: Int64, timeout: Duration) async -> Bool {
        let id = QueueID(topic: topic, queueId: queueId)
        return await notifier.wait(for: id, timeout: timeout) { [weak self] in
            guard let self else { return false }
            return self.maxOffset(topic: topic, queueId: queueId) > offset
        }
    }

    /// Every topic/queue the store has a ConsumeQueue for, sorted.
    public func queueIDs() -> [QueueID] { queues.withLock { $0.keys.sorted() } }

    /// Every topic the store holds messages for, sorted.
    public func topics() -> [String] { Array(Set(queueIDs().map(\.topic))).sorted() }

    /// Physical offsets: oldest kept, end of the written log, end of the synced log.
    public var commitLogMinOffset: Int64 { commitLog.minOffset }
    public var commitLogMaxOffset: Int64 { commitLog.writtenPosition }
    public var commitLogFlushedOffset: Int64 { commitLog.flushedPosition }
    /// The flusher's rounds, group sizes and time since the store opened.
    public var flushStatistics: FlushStatistics { flushService.statistics }

    // MARK: Checkpoint, retention, shutdown

    /// Rewrites the checkpoint, first syncing the ConsumeQueues and IndexFiles when
    /// `indexSyncInterval` has passed, at a clean shutdown, or with `syncIndex`. Its safe offset
    /// is at most what the last such sync covered, so recovery re-dispatches everything after it.
    ///
    /// The ConsumeQueues are synced with the index and not at every checkpoint: in between,
    /// their sync could not move the safe offset, and each costs an `msync` (a disk cache flush)
    /// per queue written since. Measured with 1,000 topics × 8 queues under load: ~1,060 of
    /// them a second, the checkpointer never idle.
    func writeCheckpoint(clean: Bool, syncIndex: Bool = false) throws(StoreError) {
        try checkpointing.withLock { (state) throws(StoreError) in try writeCheckpointLocked(clean: clean, syncIndex: syncIndex, state: &state) }
    }

    /// What checkpoints keep between them, under `checkpointing`.
    struct CheckpointState {
        /// Directories that gained a file or directory since the last sync of the ConsumeQueues
        /// and IndexFiles; synced with them, so that the names survive a power cut before the
        /// checkpoint moves past their entries.
        var unsyncedDirectories = Set<String>()
        var lastSyncedDirectories = Set<String>()
    }

    /// `writeCheckpoint` with `checkpointing` held (`state` is what it guards).
    func writeCheckpointLocked(clean: Bool, syncIndex: Bool, state: inout CheckpointState) throws(StoreError) {
        let dispatched = commitLog.writtenPosition
        let now = ContinuousClock.now
        let indexSynced: Int64
        if clean || syncIndex || now >= indexSync.withLock({ $0.due }) {
            for cq in allQueues() {
                try cq.sync()
                if cq.takeCreatedFiles() {
                    state.unsyncedDirectories.formUnion([cq.directory, consumeQueueRoot + "/" + cq.id.topic, consumeQueueRoot])
                }
            }
            try index.sync()
            if index.takeCreatedFiles() { state.unsyncedDirectories.insert(index.directory) }
            state.lastSyncedDirectories = state.unsyncedDirectories
            for directory in state.lastSyncedDirectories.sorted() {
                try FileSystem.syncDirectory(directory)
                state.unsyncedDirectories.remove(directory)
            }
            indexSync.withLock { $0 = IndexSync(due: now + configuration.indexSyncInterval, covered: dispatched) }
            indexSynced = dispatched
        } else {
            indexSynced = indexSync.withLock { $0.covered }
        }
        let flushed = commitLog.flushedPosition
        let checkpoint = Checkpoint(
            commitLogEnd: clean ? dispatched : flushed, safeOffset: min(dispatched, flushed, indexSynced),
            cleanShutdown: clean, timestamp: MessageStore.nowMilliseconds())
        try checkpoint.save(checkpointPath)
    }

    /// When the IndexFiles are next synced, and the CommitLog position the last sync covered.
    struct IndexSync {
        var due: ContinuousClock.Instant
        var covered: Int64
    }

    /// Changes how long segments are kept and when they are deleted; takes effect at the next
    /// retention check (every `retentionCheckInterval`).
    public func updateRetention(fileReservedTime: Duration, deleteWhenHour: Int, diskCleanRatio: Double) {
        retention.withLock { $0 = RetentionPolicy(fileReservedTime: fileReservedTime, deleteWhenHour: deleteWhenHour, diskCleanRatio: diskCleanRatio) }
    }

    /// The retention settings in force.
    public var retentionPolicy: RetentionPolicy { retention.withLock { $0 } }

    /// Checks disk use (refusing appends past the hard ratio) and deletes expired segments
    /// when it is the configured hour, the disk is past the clean ratio, or `force` is set.
    /// Returns how many segments were deleted.
    @discardableResult
    func runRetention(now: Date = Date(), force: Bool = false) -> Int {
        let dir = configuration.dataDirectory
        var ratio = configuration.diskUsage(dir)
        let hour = Calendar(identifier: .gregorian).dateComponents(in: TimeZone(identifier: "UTC") ?? .current, from: now).hour ?? -1
        let policy = retention.withLock { $0 }
        var deleted = 0
        if force || hour == policy.deleteWhenHour || ratio >= policy.diskCleanRatio {
            let reserved = Double(policy.fileReservedTime.components.seconds)
            let held = Double(max(policy.fileReservedTime, configuration.maxRetentionHold).components.seconds)
            let needed = configuration.recordsStillNeeded.map { needed in { @Sendable in needed(self) } }
            deleted = commitLog.deleteSegments(
                modifiedBefore: now.timeIntervalSince1970 - reserved,
                keeping: needed.map { RetainedRecords(from: $0, unlessModifiedBefore: now.timeIntervalSince1970 - held, diskFull: ratio >= configuration.diskHardLimitRatio) })
            if deleted > 0 {
                let minOffset = commitLog.minOffset
                for cq in allQueues() {
                    do { try cq.dropEntries(below: minOffset) } catch {
                        logger.error("cannot trim ConsumeQueue", metadata: ["queue": "\(cq.id)", "error": "\(error)"])
                    }
                }
                index.dropFiles(below: minOffset)
                ratio = configuration.diskUsage(dir)
            }
        }
        if ratio >= configuration.diskHardLimitRatio {
            if diskFullRatio.exchange(ratio.bitPattern, ordering: .relaxed) == 0 {
                logger.error("disk full: refusing appends", metadata: ["usedRatio": "\(ratio)"])
            }
        } else if diskFullRatio.exchange(0, ordering: .relaxed) != 0 {
            logger.notice("disk below the hard limit again: accepting appends", metadata: ["usedRatio": "\(ratio)"])
        }
        return deleted
    }

    /// Stops accepting appends, flushes everything (resuming waiting sync appends), syncs the
    /// ConsumeQueues and IndexFiles, writes a clean checkpoint and releases the directory lock.
    /// Idempotent.
    public func shutdown() {
        guard !isShutDown.exchange(true, ordering: .sequentiallyConsistent) else { return }
        writer.withLock { _ in }  // let an append that already holds the lock finish its write
        commitLog.stopPreparing()
        background.withLock { $0 }?.stop()
        flushService.stop()
        notifier.notifyAll()
        do {
            try commitLog.flush()
            try writeCheckpoint(clean: true)
        } catch {
            logger.error("shutdown could not write a clean checkpoint; next start will recover", metadata: ["error": "\(error)"])
        }
        directoryLock.release()
        logger.info("store shut down", metadata: ["end": "\(commitLog.writtenPosition)"])
    }

    /// Stops threads and releases the lock without flushing or a clean checkpoint, as a
    /// crash would leave things (page cache kept; records staged for a sync flush lost, their
    /// waiters failed). For tests.
    func abandonForTesting() {
        guard !isShutDown.exchange(true, ordering: .sequentiallyConsistent) else { return }
        writer.withLock { _ in }
        commitLog.stopPreparing()
        background.withLock { $0 }?.stop()
        flushService.stop(flushing: false)
        notifier.notifyAll()
        directoryLock.release()
    }

    fileprivate func backgroundTick(_ tick: inout BackgroundLoop.Tick) {
        // An idle store does no I/O: rewrite the checkpoint only when something moved, or
        // when an index sync is due for writes the last one did not cover.
        let positions = (commitLog.writtenPosition, commitLog.flushedPosition)
        let indexBehind = indexSync.withLock { $0.covered < positions.0 && ContinuousClock.now >= $0.due }
        if positions != tick.checkpointed || indexBehind {
            do {
                try writeCheckpoint(clean: false)
                tick.checkpointed = positions
            } catch {
                logger.error("checkpoint failed", metadata: ["error": "\(error)"])
            }
        }
        if ContinuousClock.now >= tick.nextRetention {
            runRetention()
            tick.nextRetention = .now + configuration.retentionCheckInterval
        }
    }
}

/// The checkpoint/retention thread: every `interval`, rewrites the checkpoint (syncing
/// ConsumeQueues and IndexFiles every `indexSyncInterval`); every retention interval, checks
/// disk use and expired segments.
/// `@unchecked Sendable`: `stopping`/`done` are guarded by `condition`.
private final class BackgroundLoop: @unchecked Sendable {
    struct Tick {
        var nextRetention: ContinuousClock.Instant
        var checkpointed: (Int64, Int64) = (-1, -1)
    }
    private weak var store: MessageStore?
    private let interval: Duration
    private let condition = NSCondition()
    private var stopping = false
    private var done = false

    init(store: MessageStore, interval: Duration) {
        self.store = store
        self.interval = interval
    }

    func start() {
        StoreThread.start(named: "checkpointer") { [self] in self.run() }
    }

    private func run() {
        let seconds = interval.timeInterval
        var tick = Tick(nextRetention: .now)
        while true {
            condition.lock()
            if !stopping { _ = condition.wait(until: Date(timeIntervalSinceNow: seconds)) }
            let stop = stopping
            condition.unlock()
            if stop { break }
            store?.backgroundTick(&tick)
        }
        condition.lock()
        done = true
        condition.broadcast()
        condition.unlock()
    }

    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while !done { condition.wait() }
        condition.unlock()
    }
}

/// How long CommitLog segments are kept and when expired ones are deleted.
public struct RetentionPolicy: Sendable, Equatable {
    /// Segments last written longer ago than this are deleted.
    public var fileReservedTime: Duration
    /// The UTC hour at which expired segments are deleted.
    public var deleteWhenHour: Int
    /// Disk use past which expired segments are deleted at once, whatever the hour.
    public var diskCleanRatio: Double

    public init(fileReservedTime: Duration, deleteWhenHour: Int, diskCleanRatio: Double) {
        self.fileReservedTime = fileReservedTime
        self.deleteWhenHour = deleteWhenHour
        self.diskCleanRatio = diskCleanRatio
    }
}
