import Atomics
import Logging
import Synchronization

/// One CommitLog segment file: `segmentSize` bytes starting at physical offset `start`.
final class CommitLogSegment: Sendable {
    let start: Int64
    let size: Int64
    let file: StoreFile
    var end: Int64 { start + size }

    init(start: Int64, size: Int64, file: StoreFile) {
        self.start = start
        self.size = size
        self.file = file
    }
}

/// The append-only log of every message: fixed-size segment files named by their 20-digit
/// start offset, records framed and checked by `RecordCodec`, never straddling a segment.
///
/// One writer (the `MessageStore`'s append lock) calls `append`; any thread may `read`
/// below `readablePosition`. Reads use `pread`, so memory stays bounded whatever the log size.
/// `@unchecked Sendable`: `current` is touched only by the single writer (under the store's
/// append lock, or during recovery before the store is shared); the rest is atomics and a mutex.
final class CommitLog: @unchecked Sendable {
    let directory: String
    let segmentSize: Int64
    private let segments = Mutex<[CommitLogSegment]>([])
    private let written = ManagedAtomic<Int64>(0)
    private let readable = ManagedAtomic<Int64>(0)
    private let flushed = ManagedAtomic<Int64>(0)
    private var current: CommitLogSegment?
    private var mapping: SegmentWriteMapping?
    private let logger: Logger

    /// Whether appends `memcpy` into a mapping of the segment (`SegmentWriteMapping`) or are
    /// staged in memory and written by the flusher (`StagedWrites`). Mapped writes avoid a
    /// syscall per record, which wins for async flush; with sync flush every `fdatasync` would
    /// have to write-protect the mapped pages (a TLB shootdown each, then a fault per page
    /// written again), so there one `pwrite` per group, by the flusher, is cheaper.
    let mappedWrites: Bool
    /// Sync flush: records waiting for the flusher's `pwrite` (unused with mapped writes).
    private let staged: StagedWrites
    /// How far `current` is prepared: zeroed past the log's end, so the file system has reserved
    /// the blocks (with sync flush a full disk then fails the append that needs them, before
    /// anything is dispatched, not the flusher's later `pwrite`; and, once synced, overwriting
    /// them changes no metadata: an `fdatasync` that must also write the inode for newly
    /// allocated blocks takes a third longer here), and for mapped writes their pages mapped.
    private var preparation: SegmentPreparation?
    /// Prepares `current` ahead of the writer, off the writer lock.
    let preparer: SegmentPreparer
    /// The end (segment-relative) last asked of the preparer for `preparation` (writer only).
    private var requestedUpTo = 0
    /// Tests: called on the preparer's thread before it zeroes a stretch (segment-relative).
    nonisolated(unsafe) var beforePreparingAheadForTesting: (@Sendable (Range<Int>) -> Void)?
    /// How far ahead of the write position the preparer keeps the segment prepared.
    static let prepareLead = 2 * SegmentPreparation.step
    /// See `StoreConfiguration.pageCacheWindow`.
    let pageCacheWindow: Int64?
    /// Below this offset the log's pages have been dropped from the page cache (flusher only).
    private var droppedBelow: Int64 = 0
    /// The first `fdatasync` failure, after which every flush fails (flusher only). Linux reports
    /// a write-back error once and may let a later `fdatasync` succeed although the bytes never
    /// reached the disk: counting them as flushed then would let an acknowledgement cover a
    /// hole that recovery truncates at. So nothing is counted as flushed again until a restart
    /// (which recovers from what the disk really holds), as databases do since "fsyncgate".
    private var syncFailure: StoreError?
    /// Tests: the next `fdatasync` fails (as a disk write-back error would).
    nonisolated(unsafe) var failNextSyncForTesting = false
    /// Held through `flush()` and `truncate(to:)`: a flush never counts bytes a truncation cut off.
    private let flushing = Mutex(())
    /// The first segment retention last kept back for a record still needed (logged once each).
    private let heldForRetention = ManagedAtomic<Int64>(-1)

    init(
        directory: String, segmentSize: Int64, mappedWrites: Bool, pageCacheWindow: Int64? = nil,
        stagedLimit: Int = 64 << 20, logger: Logger
    ) throws(StoreError) {
        self.directory = directory
        self.staged = StagedWrites(limit: stagedLimit)
        self.mappedWrites = mappedWrites
        self.pageCacheWindow = pageCacheWindow
        self.segmentSize = segmentSize
        self.logger = logger
        self.preparer = SegmentPreparer(logger: logger)
        try FileSystem.makeDirectory(directory)
        var loaded = [CommitLogSegment]()
        for name in FileSystem.list(directory) {
            guard name.utf8.count == 20, let start = Int64(name) else { continue }
            let file = try StoreFile(path: directory + "/" + name)
            if file.size < segmentSize { try file.truncate(to: segmentSize) }
            guard file.size == segmentSize else {
                throw .badFile(path: file.path, reason: "segment is \(file.size) bytes, configured segment size is \(segmentSize)")
            }
            loaded.append(CommitLogSegment(start: start, size: segmentSize, file: file))
        }
        for (a, b) in zip(loaded, loaded.dropFirst()) where a.end != b.start {
            throw .badFile(path: directory, reason: "segments \(a.start) and \(b.start) are not contiguous")
        }
        segments.withLock { $0 = loaded }
    }

    deinit { preparer.stop() }

    /// End of the last record written and dispatched (`publish(upTo:)`): what the flusher
    /// and the checkpoint count as the log's end.
    var writtenPosition: Int64 { written.load(ordering: .acquiring) }
    /// End of the last record whose bytes are written, dispatched or not: reads serve
    /// everything below it. Ahead of `writtenPosition` only inside an append, between the
    /// write and `publish(upTo:)`; its ConsumeQueue entry becomes visible in between, so a
    /// reader that finds the entry must be able to read the record already.
    var readablePosition: Int64 { readable.load(ordering: .acquiring) }
    /// Everything below this offset is known to be on disk (`fdatasync` returned).
    var flushedPosition: Int64 { flushed.load(ordering: .acquiring) }
    /// Start of the oldest segment still kept (0 for an empty log).
    var minOffset: Int64 { segments.withLock { $0.first?.start ?? 0 } }
    var segmentCount: Int { segments.withLock { $0.count } }
    var segmentList: [CommitLogSegment] { segments.withLock { $0 } }

    /// The segments holding any byte of `range`.
    private func segments(overlapping range: Range<Int64>) -> [CommitLogSegment] {
        segments.withLock { list in list.filter { $0.end > range.lowerBound && $0.start < range.upperBound } }
    }

    private func segment(containing offset: Int64) -> CommitLogSegment? {
        segments.withLock { list in
            var lo = 0
            var hi = list.count - 1
            while lo <= hi {
                let mid = (lo + hi) / 2
                let s = list[mid]
                if offset < s.start { hi = mid - 1 } else if offset >= s.end { lo = mid + 1 } else { return s }
            }
            return nil
        }
    }

    private func createSegment(at start: Int64) throws(StoreError) -> CommitLogSegment {
        let file = try StoreFile(path: directory + "/" + FileSystem.offsetName(start))
        // Mapped writes need the blocks reserved up front: a full disk must fail here, not
        // as SIGBUS on a page fault. pwrite reports ENOSPC itself, and writing into
        // preallocated (unwritten) extents makes every fdatasync convert them: sparse is faster.
        if mappedWrites { try file.allocate(segmentSize) } else { try file.truncate(to: segmentSize) }
        // The new name must survive a power cut before any record in it is acknowledged (a
        // file system without a journal keeps it only once the directory is synced).
        try FileSystem.syncDirectory(directory)
        let segment = CommitLogSegment(start: start, size: segmentSize, file: file)
        segments.withLock { $0.append(segment) }
        logger.debug("created CommitLog segment", metadata: ["start": "\(start)"])
        return segment
    }

    // MARK: Writing (single writer)

    /// Writes `record` at the write position, rolling to a new segment first if it does not
    /// fit (an end-of-segment marker fills the old one). `seal` gets the record bytes and the
    /// physical offset just before the write. Makes the record readable, but does not publish
    /// it: call `publish(upTo:)` once the record is dispatched.
    func append(_ record: inout [UInt8], seal: (UnsafeMutableRawBufferPointer, Int64) -> Void) throws(StoreError) -> Int64 {
        let (segment, physicalOffset) = try place(Int64(record.count))
        let at = Int(physicalOffset - segment.start)
        if mappedWrites {
            guard let mapping else { throw .shutDown }
            record.withUnsafeMutableBytes { raw in
                seal(raw, physicalOffset)
                mapping.write(UnsafeRawBufferPointer(raw), at: at)
            }
            readable.store(physicalOffset + Int64(record.count), ordering: .releasing)
            mapping.release(below: at)
        } else {
            try StoreError.catching {
                try record.withUnsafeMutableBytes { raw in
                    seal(raw, physicalOffset)
                    try staged.add(UnsafeRawBufferPointer(raw), segment: segment, at: physicalOffset)
                }
            }
            readable.store(physicalOffset + Int64(record.count), ordering: .releasing)
        }
        return physicalOffset
    }

    /// Writes `records` one after the other into one segment (rolling first if they do not all
    /// fit in this one), as a batch: everything that can fail (room in the stage, a new segment,
    /// its blocks) happens before the first is written, so that they are written all or none.
    /// Staged (sync flush), they are staged together, so the flusher writes all or none of them
    /// out. `seal` gets each record's index, bytes and physical offset. Returns their offsets;
    /// like `append`, makes them readable without publishing them.
    /// - Throws: `.messageTooLarge` for records that together do not fit in a segment.
    func append(
        batch records: inout [[UInt8]], seal: (Int, UnsafeMutableRawBufferPointer, Int64) -> Void
    ) throws(StoreError) -> [Int64] {
        let total = records.reduce(0) { $0 + $1.count }
        guard Int64(total) + Int64(RecordCodec.blankSize) <= segmentSize else {
            throw .messageTooLarge(size: total, limit: Int(segmentSize) - RecordCodec.blankSize)
        }
        // Before `place`, which may roll the segment: a refused batch changes nothing.
        if !mappedWrites { try staged.reserve(total) }
        let (segment, start) = try place(Int64(total))
        var offsets: [Int64] = []
        offsets.reserveCapacity(records.count)
        var physicalOffset = start
        for index in records.indices {
            let offset = physicalOffset
            offsets.append(offset)
            physicalOffset += Int64(records[index].count)
            records[index].withUnsafeMutableBytes { seal(index, $0, offset) }
        }
        if mappedWrites {
            guard let mapping else { throw .shutDown }
            for (index, offset) in offsets.enumerated() {
                records[index].withUnsafeBytes { mapping.write($0, at: Int(offset - segment.start)) }
            }
            if let last = offsets.last { mapping.release(below: Int(last - segment.start)) }
        } else {
            staged.add(reserved: records, segment: segment, at: start)
        }
        readable.store(physicalOffset, ordering: .releasing)
        return offsets
    }

    /// Where the next `size` bytes go: the write position, or the next segment's start when they
    /// do not fit in this one (an end-of-segment marker then fills it; a record never straddles
    /// segments). Readies the segment for them: its write mapping or stage, and prepared bytes
    /// up to their end, so a full disk fails here, before anything of theirs is written.
    @inline(__always)
    private func place(_ size: Int64) throws(StoreError) -> (segment: CommitLogSegment, offset: Int64) {
        var position = written.load(ordering: .relaxed)
        var segment = try segmentForWriting(at: position)
        let left = segment.end - position
        if !(size == left || size + Int64(RecordCodec.blankSize) <= left) {
            position = try endSegment(segment, at: position)
            segment = try segmentForWriting(at: position)
        }
        let at = Int(position - segment.start)
        if mappedWrites {
            if current !== segment || mapping == nil {
                mapping = nil
                let newMapping = try SegmentWriteMapping(file: segment.file, size: Int(segmentSize))
                mapping = newMapping
                current = segment
                startPreparing(segment, at: at, mapping: newMapping)
            }
        } else if current !== segment {
            current = segment
            startPreparing(segment, at: at, mapping: nil)
        }
        try prepare(upTo: at + Int(size))
        return (segment, position)
    }

    /// Replicas: ends the segment holding the write position with an end-of-segment marker, as
    /// `append` does when a record does not fit, so the next record starts the next segment.
    /// Returns the new write position (the segment's end).
    func fillSegment() throws(StoreError) -> Int64 {
        let position = written.load(ordering: .relaxed)
        let segment = try segmentForWriting(at: position)
        guard segment.end - position >= Int64(RecordCodec.blankSize) else {
            throw .replicaDiverged("no room for an end-of-segment marker at \(position)")
        }
        return try endSegment(segment, at: position)
    }

    /// The segment the writer writes `position` into: the current one, a kept one, or a new one.
    private func segmentForWriting(at position: Int64) throws(StoreError) -> CommitLogSegment {
        if let c = current, position >= c.start, position < c.end { return c }
        if let s = segment(containing: position) { return s }
        return try createSegment(at: position)
    }

    /// Fills `segment` from `position` with an end-of-segment marker and moves the write
    /// position to its end, which it returns.
    private func endSegment(_ segment: CommitLogSegment, at position: Int64) throws(StoreError) -> Int64 {
        // The marker lands on prepared bytes like any record (zeros prepared later would erase
        // it, and recovery would end the log there), and the preparer is done with the segment.
        if let preparation, preparation.file === segment.file {
            try preparation.ensure(upTo: Int(position - segment.start) + RecordCodec.blankSize)
            preparation.finish()
        }
        try segment.file.write(RecordCodec.blankMarker(size: Int(segment.end - position)), at: position - segment.start)
        readable.store(segment.end, ordering: .releasing)
        written.store(segment.end, ordering: .releasing)
        return segment.end
    }

    /// Replicas: an empty log starts at `offset` (a segment boundary) instead of 0, because the
    /// master it copies no longer keeps the segments before.
    func startEmpty(at offset: Int64) throws(StoreError) {
        guard segmentCount == 0, written.load(ordering: .relaxed) == 0 else {
            throw .replicaDiverged("only an empty log can start at \(offset)")
        }
        guard offset >= 0, offset % segmentSize == 0 else {
            throw .replicaDiverged("\(offset) is not a segment boundary for \(segmentSize)-byte segments")
        }
        staged.reset(at: offset)
        readable.store(offset, ordering: .releasing)
        written.store(offset, ordering: .releasing)
        flushed.store(offset, ordering: .releasing)
    }

    /// The writer starts writing `segment` at `at` (segment-relative): preparation starts there.
    private func startPreparing(_ segment: CommitLogSegment, at: Int, mapping: SegmentWriteMapping?) {
        preparation = SegmentPreparation(
            file: segment.file, size: Int(segmentSize), writePosition: at, mapping: mapping, beforeStepAhead: beforePreparingAheadForTesting)
        requestedUpTo = 0
    }

    /// Makes sure a write ending at `end` (segment-relative) lands on prepared bytes, and asks
    /// the preparer to keep `prepareLead` bytes ready beyond it once a stretch more is due.
    private func prepare(upTo end: Int) throws(StoreError) {
        guard let preparation else { throw .shutDown }
        try preparation.ensure(upTo: end)
        let target = min(Int(segmentSize), end + Self.prepareLead)
        if target >= requestedUpTo + SegmentPreparation.step || (target == Int(segmentSize) && requestedUpTo < target) {
            requestedUpTo = target
            preparer.request(preparation, upTo: target)
        }
    }

    /// The segment being written: stretches prepared by the writer itself and ahead of it, and
    /// the physical offset it is prepared up to. Read it while no append runs (tests).
    var preparationState: (byWriter: Int, ahead: Int, preparedEnd: Int64)? {
        guard let preparation, let current else { return nil }
        let stretches = preparation.statistics
        return (stretches.byWriter, stretches.ahead, current.start + Int64(preparation.prepared))
    }

    /// Stops preparing ahead (the store is closing); waits for a stretch being written.
    func stopPreparing() {
        preparer.stop()
    }

    /// Marks everything below `end` written and dispatched, for the flusher and the checkpoint.
    func publish(upTo end: Int64) {
        written.store(end, ordering: .releasing)
    }

    /// `fdatasync`s every segment holding bytes between the flushed and the written position.
    /// Called by one flusher thread at a time. Returns the new flushed position.
    @discardableResult
    func flush() throws(StoreError) -> Int64 {
        try flushing.withLock { (_) throws(StoreError) -> Int64 in try flushLocked() }
    }

    private func flushLocked() throws(StoreError) -> Int64 {
        let target = written.load(ordering: .acquiring)
        let from = flushed.load(ordering: .relaxed)
        if let syncFailure { throw syncFailure }
        guard target > from else { return from }
        if !mappedWrites { try staged.writeOut() }
        for s in segments(overlapping: from..<target) {
            do throws(StoreError) {
                if failNextSyncForTesting {
                    failNextSyncForTesting = false
                    throw StoreError.io(operation: "fdatasync", path: s.file.path, errno: 5)  // EIO
                }
                try s.file.sync()
            } catch {
                syncFailure = error
                logger.critical("fdatasync failed: no append counts as flushed until a restart", metadata: ["error": "\(error)"])
                throw error
            }
        }
        flushed.store(target, ordering: .releasing)
        dropBehind(flushedTo: target)
        return target
    }

    /// Drops from the page cache what lies more than `pageCacheWindow` behind `end` (flushed,
    /// so clean), in steps of 4 MiB (less for smaller windows). Advice only: a failure changes
    /// nothing. Pages the writer still maps stay cached (the mapping lets go 1 MiB behind).
    ///
    /// Each range given to `fadvise` starts and ends on a `dropAlignment` boundary of the file
    /// (or at its end): the page cache holds file data in folios of up to 2 MiB (the zeros the
    /// writer prepares go in 256 KiB at a time), and the kernel drops no folio a range covers only
    /// in part. With ranges cut at any page, a segment dropped in two pieces stayed cached whole
    /// (seen as a flaky test on a busy machine: 64 of 64 pages resident after both drops).
    private func dropBehind(flushedTo end: Int64) {
        guard let window = pageCacheWindow else { return }
        let limit = (end - window) / 4096 * 4096
        guard limit - droppedBelow >= min(4 << 20, max(window, 4096)) else { return }
        let from = droppedBelow
        let align = Self.dropAlignment
        for s in segments(overlapping: from..<limit) {
            // From the boundary at or below where the last drop stopped: what it left short of
            // its limit goes now.
            let start = (max(from, s.start) - s.start) / align * align
            let stop = limit >= s.end ? s.end - s.start : (limit - s.start) / align * align
            if stop > start { s.file.dropFromCache(offset: start, count: stop - start) }
        }
        droppedBelow = limit
    }

    /// The largest page-cache folio (a PMD): see `dropBehind`.
    static let dropAlignment: Int64 = 2 << 20

    // MARK: Reading (any thread)

    /// The raw record of `size` bytes at `offset`.
    func read(at offset: Int64, size: Int) throws(StoreError) -> [UInt8] {
        // Compared without `offset + size`, which a crafted offset (a message id of 16 hex
        // digits, a garbage ConsumeQueue entry) near Int64.max would overflow into a trap.
        guard offset >= 0, size > 0, offset <= readablePosition - Int64(size),
              let segment = segment(containing: offset), offset <= segment.end - Int64(size)
        else { throw .offsetOutOfRange(physicalOffset: offset) }
        if !mappedWrites, let bytes = try staged.read(at: offset, count: size, file: segment.file, fileOffset: offset - segment.start) {
            return bytes
        }
        let bytes = try segment.file.read(count: size, at: offset - segment.start)
        guard bytes.count == size else { throw .corruptRecord(physicalOffset: offset, reason: "short read") }
        return bytes
    }

    /// The checked message whose record starts at `offset` (size unknown: reads the header first).
    func message(at offset: Int64, size knownSize: Int? = nil, includeBody: Bool = true) throws(StoreError) -> StoredMessage {
        var size = knownSize ?? 0
        if knownSize == nil {
            let head = try read(at: offset, size: RecordCodec.blankSize)
            guard case .message(let s) = head.withUnsafeBytes({ RecordCodec.peek($0) }) else {
                throw .offsetOutOfRange(physicalOffset: offset)
            }
            size = s
        }
        let bytes = try read(at: offset, size: size)
        return try StoreError.catching {
            try bytes.withUnsafeBytes { raw in try RecordCodec.decode(raw, expectedOffset: offset, includeBody: includeBody) }
        }
    }

    /// Reads only the fixed header fields at `offset` (no CRC check): used by time binary search.
    func storeTimestamp(at offset: Int64) throws(StoreError) -> Int64 {
        let head = try read(at: offset, size: 56)
        return head.withUnsafeBytes { Int64(littleEndian: $0.loadUnaligned(fromByteOffset: 48, as: Int64.self)) }
    }

    // MARK: Recovery

    /// Walks records from `start` (a record boundary), checking each, calling `visit` for
    /// each good one, until the first empty or bad spot. Truncates the log there (zeroing
    /// the rest of that segment, deleting later segments) and sets the write and flush
    /// positions to it. Returns that end offset.
    /// - Parameter synced: the end the last checkpoint recorded as synced (0: unknown). A scan
    ///   that stops below it met damage, not a torn tail: it throws rather than cut the log
    ///   there, unless `force`.
    func recover(
        from start: Int64, synced: Int64 = 0, force: Bool = false, visit: (RecordCodec.DispatchInfo) throws(StoreError) -> Void
    ) throws(StoreError) -> Int64 {
        let list = segmentList
        guard let first = list.first, let last = list.last else {
            staged.reset(at: start)
            readable.store(start, ordering: .releasing)
            written.store(start, ordering: .releasing)
            flushed.store(start, ordering: .releasing)
            return start
        }
        var position = max(start, first.start)
        var index = list.firstIndex(where: { position < $0.end }) ?? list.count
        let chunkSize = 4 << 20
        var chunk = [UInt8](repeating: 0, count: chunkSize)
        var stopReason = "end of log"
        scan: while index < list.count {
            let segment = list[index]
            var chunkStart = position  // physical offset of chunk[0]
            var chunkCount = 0
            while position < segment.end {
                let want = Int(min(Int64(chunkSize), segment.end - position))
                if position + Int64(RecordCodec.blankSize) > chunkStart + Int64(chunkCount) {
                    chunkStart = position
                    chunkCount = try StoreError.catching {
                        try chunk.withUnsafeMutableBytes { raw in
                            try segment.file.read(into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<want]), at: position - segment.start)
                        }
                    }
                    if chunkCount < RecordCodec.blankSize { stopReason = "short segment"; break scan }
                }
                let at = Int(position - chunkStart)
                let peek = chunk.withUnsafeBytes { RecordCodec.peek(UnsafeRawBufferPointer(rebasing: $0[at..<(at + 8)])) }
                switch peek {
                case .empty:
                    stopReason = "zeros"
                    break scan
                case .invalid:
                    stopReason = "bad size or magic"
                    break scan
                case .endOfSegment(let size):
                    guard position + Int64(size) == segment.end else { stopReason = "bad end-of-segment marker"; break scan }
                    position = segment.end
                case .message(let size):
                    guard position + Int64(size) <= segment.end else { stopReason = "record past segment end"; break scan }
                    var info: RecordCodec.DispatchInfo
                    do {
                        if at + size <= chunkCount {
                            info = try StoreError.catching {
                                try chunk.withUnsafeBytes { raw in
                                    try RecordCodec.dispatchInfo(UnsafeRawBufferPointer(rebasing: raw[at..<(at + size)]), expectedOffset: position)
                                }
                            }
                        } else {
                            let bytes = try segment.file.read(count: size, at: position - segment.start)
                            guard bytes.count == size else { stopReason = "short record"; break scan }
                            info = try StoreError.catching {
                                try bytes.withUnsafeBytes { raw in try RecordCodec.dispatchInfo(raw, expectedOffset: position) }
                            }
                            chunkCount = 0  // force a refill after this record
                        }
                    } catch {
                        if case .corruptRecord(_, let reason) = error { stopReason = reason; break scan }
                        throw error
                    }
                    try visit(info)
                    position += Int64(size)
                }
            }
            index += 1
        }
        // Records below `synced` were synced before the crash, and their senders may have been
        // answered: a scan that stops there found damage (a bad disk block, a file changed by
        // hand), and cutting would delete them with every later segment.
        let holder = list.first(where: { position >= $0.start && position < $0.end })
        if position < synced {
            let path = holder?.file.path ?? directory
            guard force else {
                throw .badFile(path: path, reason: "damaged record at CommitLog offset \(position) (\(stopReason)), below \(synced), "
                    + "the end the last checkpoint recorded as synced; recovery would drop every record from there on. "
                    + "Restore the segment, or start with forceRecovery to cut the log at \(position)")
            }
            logger.error("forced recovery cuts the CommitLog below its synced end", metadata: [
                "segment": "\(path)", "at": "\(position)", "synced": "\(synced)", "stop": "\(stopReason)"])
        }
        // Truncate: zero the rest of the segment holding `position`, drop later segments.
        if let holder {
            let keep = position - holder.start
            try holder.file.truncate(to: keep)
            try holder.file.truncate(to: segmentSize)
            if mappedWrites { try holder.file.allocate(segmentSize) }  // no holes under a write mapping
        }
        let doomed = list.filter { $0.start > position }
        if !doomed.isEmpty || position < last.end {
            logger.info("CommitLog recovered", metadata: ["end": "\(position)", "stop": "\(stopReason)", "droppedSegments": "\(doomed.count)"])
        }
        for s in doomed.reversed() { try FileSystem.remove(s.file.path) }  // newest first: no gap if interrupted
        segments.withLock { $0.removeAll { $0.start > position } }
        current = nil
        mapping = nil
        preparation = nil
        staged.reset(at: position)
        readable.store(position, ordering: .releasing)
        written.store(position, ordering: .releasing)
        flushed.store(min(start, position), ordering: .releasing)
        return position
    }

    /// Replicas: cuts the log back to `end`, a record boundary at or above the oldest kept
    /// segment's start and at or below the write position, as recovery cuts a torn tail: zeroes
    /// the rest of the segment holding `end` (on disk before this returns), deletes later
    /// segments, and moves every position back to `end`. Under the store's writer lock; waits
    /// for a flush in progress. Records staged below `end` are written first.
    func truncate(to end: Int64) throws(StoreError) {
        try flushing.withLock { (_) throws(StoreError) in
            if !mappedWrites { try staged.writeOut() }
            preparation?.finish()  // waits for a stretch of zeros being written; none after
            preparation = nil
            mapping = nil
            current = nil
            let list = segmentList
            // Retention (which does not take the writer lock) may just have deleted old segments.
            guard let first = list.first, first.start <= end else { throw .offsetOutOfRange(physicalOffset: end) }
            if let holder = list.first(where: { end >= $0.start && end < $0.end }) {
                try holder.file.truncate(to: end - holder.start)
                try holder.file.truncate(to: segmentSize)
                if mappedWrites { try holder.file.allocate(segmentSize) }
                try holder.file.sync()
            }
            // Newest first: a crash half-way leaves the kept segments contiguous.
            let doomed = list.filter { $0.start > end }
            for s in doomed.reversed() { try FileSystem.remove(s.file.path) }
            segments.withLock { $0.removeAll { $0.start > end } }
            staged.reset(at: end)
            readable.store(end, ordering: .releasing)
            written.store(end, ordering: .releasing)
            if flushed.load(ordering: .relaxed) > end { flushed.store(end, ordering: .releasing) }
            droppedBelow = min(droppedBelow, end)
        }
    }

    // MARK: Retention

    /// Deletes the oldest segments last written before `cutoff` (seconds since the epoch), never
    /// the one being written, nor (with `keeping`) one holding a record still needed or anything
    /// after it, within the limits `keeping` sets. Returns how many it deleted.
    func deleteSegments(modifiedBefore cutoff: Double, keeping: RetainedRecords? = nil) -> Int {
        guard !expiredSegments(modifiedBefore: cutoff).isEmpty else { return 0 }
        // Asked before any lock is taken (it reads the log, and a flush must not wait for it):
        // the offset it answers only grows, so an answer a moment old keeps at least as much.
        let keepFrom = keeping.flatMap { $0.from() }
        // Not while a replica's cut (or a flush) runs: the cut must find the segment it keeps.
        return flushing.withLock { _ in deleteSegmentsLocked(modifiedBefore: cutoff, keepFrom: keepFrom, limits: keeping) }
    }

    /// The oldest segments, in order, last written before `cutoff` (with that time), up to the
    /// first that is not (never the one being written).
    private func expiredSegments(modifiedBefore cutoff: Double) -> [(segment: CommitLogSegment, modified: Double)] {
        let writing = writtenPosition
        return segments.withLock { list in
            var out: [(segment: CommitLogSegment, modified: Double)] = []
            for s in list.dropLast() {
                guard s.end <= writing, let mtime = FileSystem.modificationTime(s.file.path), mtime < cutoff else { break }
                out.append((s, mtime))
            }
            return out
        }
    }

    private func deleteSegmentsLocked(modifiedBefore cutoff: Double, keepFrom: Int64?, limits: RetainedRecords?) -> Int {
        var victims: [CommitLogSegment] = []
        for (segment, modified) in expiredSegments(modifiedBefore: cutoff) {
            if let keepFrom, let limits, segment.end > keepFrom {
                let why = limits.diskFull ? "the disk is full" : modified < limits.unlessModifiedBefore ? "last written longer ago than maxRetentionHold" : nil
                guard let why else {
                    if heldForRetention.exchange(segment.start, ordering: .relaxed) != segment.start {
                        logger.notice("keeping expired CommitLog segments: they hold records still needed (a delay message not due yet, or an open transaction)",
                                      metadata: ["from": "\(segment.start)", "neededOffset": "\(keepFrom)"])
                    }
                    break
                }
                logger.error("deleting an expired CommitLog segment that holds records still needed (a delay message not due yet, or an open transaction): \(why)",
                             metadata: ["start": "\(segment.start)", "neededOffset": "\(keepFrom)"])
            }
            victims.append(segment)
        }
        // Segments leave the front only under `flushing` (retention, a replica's cut) and appends
        // add them at the end: these are still the first ones.
        segments.withLock { $0.removeFirst(victims.count) }
        for s in victims {
            do { try FileSystem.remove(s.file.path) } catch {
                logger.error("cannot delete expired segment", metadata: ["path": "\(s.file.path)", "error": "\(error)"])
            }
            logger.info("deleted expired CommitLog segment", metadata: ["start": "\(s.start)"])
        }
        return victims.count
    }
}

/// What retention keeps past a segment's reserved time (see `StoreConfiguration.recordsStillNeeded`).
struct RetainedRecords {
    /// The lowest offset still needed, or nil.
    var from: @Sendable () -> Int64?
    /// Segments last written before this (seconds since the epoch) go all the same.
    var unlessModifiedBefore: Double
    /// On a full disk nothing is kept for them.
    var diskFull: Bool
}
