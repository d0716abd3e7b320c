import Atomics
import Logging
import Synchronization

/// One ConsumeQueue entry: where a message of this queue sits in the CommitLog.
struct ConsumeQueueEntry: Equatable, Sendable {
    static let size = 20
    var physicalOffset: Int64
    var size: Int32
    var tagsHash: Int64

    /// Where the entry's record ends in the CommitLog. A garbage entry (a torn page, a hand-edited
    /// file) near `Int64.max` gives `.max`, which lies past any log end, rather than a trap.
    var recordEnd: Int64 {
        let (end, overflow) = physicalOffset.addingReportingOverflow(Int64(size))
        return overflow ? .max : end
    }
}

/// The index of one topic/queue: fixed-size files of 20-byte entries (physical offset 8,
/// size 4, tag hash 8), entry `n` at byte `n * 20` of the queue, files named by their
/// 20-digit starting byte offset (as in RocketMQ), under `consumequeue/<topic>/<queue>/`.
///
/// One writer (the store's append lock, or recovery) calls `put`; readers call `entry(at:)`
/// for offsets below `maxOffset`, published with release/acquire atomics after the bytes.
/// `@unchecked Sendable`: entry bytes live in shared mappings written only by that writer.
final class ConsumeQueue: @unchecked Sendable {
    let id: QueueID
    let directory: String
    let entriesPerFile: Int
    private var fileBytes: Int { entriesPerFile * ConsumeQueueEntry.size }
    private let files = Mutex<[Int64: MappedFile]>([:])  // file index -> mapping
    private let max = ManagedAtomic<Int64>(0)
    private let min = ManagedAtomic<Int64>(0)
    /// See `raiseFloor(to:)`.
    private let floor = ManagedAtomic<Int64>(0)
    /// Entries below this were synced by the last checkpoint (checkpoint thread, or recovery and
    /// a replica's cut, which hold off checkpoints).
    private var synced: Int64 = 0
    /// Times `sync()` had entries to write (tests).
    private(set) var syncs = 0

    init(id: QueueID, root: String, entriesPerFile: Int) {
        self.id = id
        self.directory = root + "/" + id.topic + "/" + String(id.queueId)
        self.entriesPerFile = entriesPerFile
    }

    /// One past the last entry: the next message's queue offset.
    var maxOffset: Int64 { max.load(ordering: .acquiring) }
    /// The first entry still readable (older ones point at deleted CommitLog segments).
    var minOffset: Int64 { min.load(ordering: .acquiring) }

    private func file(index: Int64, create: Bool) throws(StoreError) -> MappedFile? {
        if let f = files.withLock({ $0[index] }) { return f }
        guard create else { return nil }
        try FileSystem.makeDirectory(directory)
        let f = try MappedFile(path: directory + "/" + FileSystem.offsetName(index * Int64(fileBytes)), size: fileBytes)
        files.withLock { $0[index] = f }
        createdFiles.store(true, ordering: .releasing)
        return f
    }

    /// Set when the writer created a file (and maybe its directories): their names are not
    /// on disk until the directories are synced.
    private let createdFiles = ManagedAtomic<Bool>(false)

    /// Whether a file was created since the last call: the checkpoint then syncs this queue's
    /// directory and those above it.
    func takeCreatedFiles() -> Bool {
        createdFiles.exchange(false, ordering: .acquiringAndReleasing)
    }

    /// Maps (creating if needed) the file that will hold `queueOffset` and reserves the disk
    /// blocks for its entry, so that the `put` after a CommitLog write cannot fail, and a full
    /// disk refuses the message before its record is written. Returns the file.
    @discardableResult
    func prepare(for queueOffset: Int64) throws(StoreError) -> MappedFile? {
        let perFile = Int64(entriesPerFile)
        guard let f = try file(index: queueOffset / perFile, create: true) else { return nil }
        try reserve(entryAt: Int(queueOffset % perFile), in: f)
        return f
    }

    /// Reserves the blocks under entry `slot` of `f`, and a stretch past it as long as the
    /// file's entries before it (at most 1 MiB): a busy queue makes one `fallocate` per
    /// stretch, each twice the last, and one with a single message keeps a single page.
    private func reserve(entryAt slot: Int, in f: MappedFile) throws(StoreError) {
        let at = slot * ConsumeQueueEntry.size
        try f.reserve(at..<(at + ConsumeQueueEntry.size), ahead: Swift.min(at, 1 << 20))
    }

    /// Replicas: a queue whose first entry is at `queueOffset` (its master dropped the older
    /// ones) starts there rather than at 0.
    func startAt(_ queueOffset: Int64) {
        if minOffset < queueOffset { min.store(queueOffset, ordering: .releasing) }
    }

    /// No offset below `queueOffset` is served again, and the next message gets at least it: how
    /// a deleted topic's messages stay gone (`MessageStore.clearTopic(_:)`). The entries below
    /// stay on disk until retention takes them; a cut or a truncation never goes below it.
    func raiseFloor(to queueOffset: Int64) {
        guard queueOffset > floor.load(ordering: .relaxed) else { return }
        floor.store(queueOffset, ordering: .relaxed)
        // The minimum first: readers never see offsets below the floor as readable.
        if minOffset < queueOffset { min.store(queueOffset, ordering: .releasing) }
        if maxOffset < queueOffset { max.store(queueOffset, ordering: .sequentiallyConsistent) }
    }

    /// Writes the entry for `queueOffset` and, if it extends the queue, publishes it.
    /// Recovery may rewrite an existing position (idempotent) or leave a hole it fills later.
    func put(_ entry: ConsumeQueueEntry, at queueOffset: Int64) throws(StoreError) {
        // On the append path `prepare` ran already: its reservation is then a bit test.
        guard let f = try prepare(for: queueOffset) else { return }
        let p = f.base + Int(queueOffset % Int64(entriesPerFile)) * ConsumeQueueEntry.size
        p.storeBytes(of: entry.physicalOffset.littleEndian, toByteOffset: 0, as: Int64.self)
        p.storeBytes(of: entry.size.littleEndian, toByteOffset: 8, as: Int32.self)
        p.storeBytes(of: entry.tagsHash.littleEndian, toByteOffset: 12, as: Int64.self)
        if queueOffset >= max.load(ordering: .relaxed) { max.store(queueOffset + 1, ordering: .sequentiallyConsistent) }
    }

    /// The entry at `queueOffset`, or nil outside `minOffset..<maxOffset`.
    func entry(at queueOffset: Int64) -> ConsumeQueueEntry? {
        guard queueOffset >= minOffset, queueOffset < maxOffset else { return nil }
        return rawEntry(at: queueOffset)
    }

    private func rawEntry(at queueOffset: Int64) -> ConsumeQueueEntry? {
        let perFile = Int64(entriesPerFile)
        guard let f = files.withLock({ $0[queueOffset / perFile] }) else { return nil }
        let p = UnsafeRawPointer(f.base + Int(queueOffset % perFile) * ConsumeQueueEntry.size)
        return ConsumeQueueEntry(
            physicalOffset: Int64(littleEndian: p.loadUnaligned(fromByteOffset: 0, as: Int64.self)),
            size: Int32(littleEndian: p.loadUnaligned(fromByteOffset: 8, as: Int32.self)),
            tagsHash: Int64(littleEndian: p.loadUnaligned(fromByteOffset: 12, as: Int64.self)))
    }

    // MARK: Recovery

    /// What loading found.
    struct LoadResult {
        /// Entries were garbage or the last file was short: dispatch must be redone from `lastEntryEnd`.
        var suspicious: Bool
        /// End (physical offset + size) of the last good entry; 0 if none.
        var lastEntryEnd: Int64
    }

    /// Maps the queue's files and finds its end by checking the entries of the last file
    /// (non-zero size, physical offsets increasing, sizes within `maxRecordSize`). Stops at
    /// the first zero or bad entry (recovery's `truncate` zeroes what follows). `synced`: the
    /// entries found are on disk already (a clean shutdown synced them), so the first
    /// checkpoint need not sync each queue again (one `msync`, and a disk cache flush, per
    /// queue: 44 s for 7,000 queues here).
    ///
    /// `floor`: the queue's floor (a deleted topic's end), raised once loaded. Entries below it
    /// are never read again, so when it lies in the last file the scan starts there: a hole or a
    /// stale entry below it (a crash before the deletion) must not end the queue below it, or
    /// the entries of the topic created again above it would be lost.
    func load(maxRecordSize: Int, synced entriesOnDisk: Bool = false, floor: Int64 = 0) throws(StoreError) -> LoadResult {
        defer { raiseFloor(to: floor) }
        var indices = [Int64]()
        for name in FileSystem.list(directory) {
            guard name.utf8.count == 20, let start = Int64(name), start % Int64(fileBytes) == 0 else { continue }
            let f = try MappedFile(path: directory + "/" + name, size: fileBytes)
            let index = start / Int64(fileBytes)
            files.withLock { $0[index] = f }
            indices.append(index)
        }
        indices.sort()
        // Keep only the newest contiguous run of files.
        var firstKept = 0
        for i in indices.indices.dropFirst() where indices[i] != indices[i - 1] + 1 { firstKept = i }
        for i in indices.prefix(firstKept) {
            if let f = files.withLock({ $0.removeValue(forKey: i) }) { try FileSystem.remove(f.path) }
        }
        indices.removeFirst(firstKept)
        guard let lastIndex = indices.last, let firstIndex = indices.first,
              let last = files.withLock({ $0[lastIndex] })
        else { return LoadResult(suspicious: false, lastEntryEnd: 0) }
        let perFile = Int64(entriesPerFile)
        let fromFloor = floor >= lastIndex * perFile
        var previousEnd: Int64 = 0
        if !fromFloor, lastIndex > firstIndex, let e = rawEntry(at: lastIndex * perFile - 1) {
            previousEnd = e.recordEnd
        }
        var suspicious = last.wasShort
        var count = fromFloor ? Int(Swift.min(floor - lastIndex * perFile, perFile)) : 0
        while count < entriesPerFile {
            guard let e = rawEntry(at: lastIndex * perFile + Int64(count)) else { break }
            if e.size == 0 && e.physicalOffset == 0 && e.tagsHash == 0 { break }
            if e.size < Int32(RecordCodec.headerSize) || Int(e.size) > maxRecordSize || e.physicalOffset < previousEnd {
                suspicious = true
                break
            }
            previousEnd = e.recordEnd
            count += 1
        }
        let end = lastIndex * perFile + Int64(count)
        // Entries past `end` are left as they are until recovery has succeeded (its `truncate`
        // zeroes them): a recovery that refuses to open the store must change nothing, or the
        // next start would see this queue as short, not damaged, and skip its redo.
        max.store(end, ordering: .releasing)
        min.store(firstIndex * perFile, ordering: .releasing)
        synced = entriesOnDisk ? end : 0
        return LoadResult(suspicious: suspicious, lastEntryEnd: previousEnd)
    }

    /// Zeroes the file's entries from `queueOffset` on; the bytes it changed, if any.
    private func zeroEntries(from queueOffset: Int64, in f: MappedFile, fileIndex: Int64) -> Range<Int>? {
        f.zeroTail(from: Int(queueOffset - fileIndex * Int64(entriesPerFile)) * ConsumeQueueEntry.size)
    }

    /// Drops tail entries pointing past `commitLogEnd` (their records were cut off) and
    /// trailing holes. Returns the new max offset.
    @discardableResult
    func truncate(commitLogEnd: Int64) throws(StoreError) -> Int64 {
        var end = maxOffset
        let low = minOffset
        // Find the first hole or entry past the log end, scanning from the tail back.
        while end > low, let e = rawEntry(at: end - 1), e.size == 0 || e.recordEnd > commitLogEnd {
            end -= 1
        }
        try cut(to: end)
        return end
    }

    /// Removes every entry at or after `queueOffset`.
    func cut(to queueOffset: Int64) throws(StoreError) {
        let perFile = Int64(entriesPerFile)
        let keepIndex = queueOffset / perFile
        let doomed: [MappedFile] = files.withLock { map in
            // Newest first: loading keeps only the newest contiguous run of files, so an
            // interrupted deletion must not leave a gap below kept entries.
            let keys = map.keys.filter { $0 > keepIndex }.sorted(by: >)
            return keys.compactMap { map.removeValue(forKey: $0) }
        }
        for f in doomed { try FileSystem.remove(f.path) }
        if let f = files.withLock({ $0[keepIndex] }), let zeroed = zeroEntries(from: queueOffset, in: f, fileIndex: keepIndex) {
            // Entries cut off (or stale ones past the end, which a later load could take for
            // entries) must not come back after an OS crash: on disk now.
            try f.sync(zeroed)
        }
        // Entries written again below the last synced point are synced by the next checkpoint.
        synced = Swift.min(synced, queueOffset)
        let floor = self.floor.load(ordering: .relaxed)
        max.store(Swift.max(queueOffset, floor), ordering: .releasing)
        if minOffset > queueOffset { min.store(Swift.max(queueOffset, floor), ordering: .releasing) }
    }

    /// Raises `minOffset` past entries whose records are below `commitLogMin` and deletes
    /// files holding only such entries.
    func dropEntries(below commitLogMin: Int64) throws(StoreError) {
        let perFile = Int64(entriesPerFile)
        var low = minOffset
        let high = maxOffset
        // Binary search: entries' physical offsets increase with the queue offset.
        var hi = high
        while low < hi {
            let mid = (low + hi) / 2
            if let e = rawEntry(at: mid), e.physicalOffset < commitLogMin { low = mid + 1 } else { hi = mid }
        }
        guard low > minOffset else { return }
        min.store(low, ordering: .releasing)
        let firstKeptFile = low / perFile
        let doomed: [MappedFile] = files.withLock { map in
            // Never the file holding the last entry: it is what records the max offset.
            let keys = map.keys.filter { $0 < firstKeptFile && ($0 + 1) * perFile < high }
            return keys.compactMap { map.removeValue(forKey: $0) }
        }
        for f in doomed { try FileSystem.remove(f.path) }
    }

    /// Syncs the pages holding entries written since the last call (checkpoint thread).
    func sync() throws(StoreError) {
        let end = maxOffset
        guard end > synced else { return }
        syncs += 1
        let perFile = Int64(entriesPerFile)
        var index = synced / perFile
        while index * perFile < end {
            if let f = files.withLock({ $0[index] }) {
                let from = Int(Swift.max(synced - index * perFile, 0)) * ConsumeQueueEntry.size
                let to = Int(Swift.min(end - index * perFile, perFile)) * ConsumeQueueEntry.size
                try f.sync(from..<to)
            }
            index += 1
        }
        synced = end
    }
}
