import Atomics
import Synchronization

/// The sync-flush write path's buffer: appended records wait here (one `memcpy` under the
/// writer's lock) until the flusher writes them out, one `pwrite` per segment stretch, just
/// before its `fdatasync`.
///
/// Why: with sync flush every append waits for a sync anyway, so writing each record by
/// itself bought nothing but cost a `pwrite` per record on the appending thread, inside the
/// writer's lock, where the other event loop then waited for it. Measured before this type
/// (sync-flush broker, 50 concurrent senders): the `pwrite`s were 15% of the event loops'
/// time and waiting for the lock another 6%.
///
/// Records are readable while staged: `read(at:count:)` serves them from here, and whatever
/// it does not find has already been written to the file (a chunk leaves the stage only once
/// its `pwrite` returned).
final class StagedWrites: Sendable {
    struct Chunk {
        let segment: CommitLogSegment
        /// Physical offset of `bytes[0]`.
        let start: Int64
        var bytes: [UInt8]
        var end: Int64 { start + Int64(bytes.count) }
    }

    private struct State {
        /// Staged and not yet taken by the flusher, in log order.
        var pending: [Chunk] = []
        /// Taken by the flusher and being written; still served to readers.
        var inFlight: [Chunk] = []
        /// Emptied buffers, kept for reuse.
        var spare: [[UInt8]] = []
        /// Bytes in `pending` and `inFlight`.
        var bytes = 0
    }

    private let state = Mutex(State())
    /// Most bytes staged at once (`StoreConfiguration.syncFlushBacklogLimit`).
    let limit: Int
    /// Everything below this physical offset is in the file (or was never staged).
    private let committed = ManagedAtomic<Int64>(0)
    /// Initial capacity of a chunk's buffer: a few hundred records of ~1 KiB.
    private static let chunkCapacity = 256 << 10

    init(limit: Int) {
        self.limit = limit
    }

    /// Empties the stage and starts over at `position` (recovery, or a simulated crash).
    func reset(at position: Int64) {
        state.withLock { $0 = State() }
        committed.store(position, ordering: .releasing)
    }

    /// Stages `record`, which goes at physical offset `start` of `segment`: right after the
    /// previous one, or at the start of a new segment. Writer only.
    /// - Throws: `StoreError.flushBacklog` (nothing staged) when `limit` bytes already wait.
    func add(_ record: UnsafeRawBufferPointer, segment: CommitLogSegment, at start: Int64) throws(StoreError) {
        try state.withLock { (s) throws(StoreError) in
            try admit(record.count, to: s)
            Self.stage(record, segment: segment, at: start, in: &s)
        }
    }

    /// Checks that `count` bytes more may be staged (they may all be, when nothing waits), so
    /// that the `add(reserved:segment:at:)` of a batch's records that follows cannot be refused:
    /// only the writer adds, and the flusher only takes bytes away. Writer only.
    /// - Throws: `StoreError.flushBacklog` when they would go over `limit`.
    func reserve(_ count: Int) throws(StoreError) {
        try state.withLock { (s) throws(StoreError) in try admit(count, to: s) }
    }

    /// Refuses `count` bytes more past `limit`; anything is taken when nothing waits.
    private func admit(_ count: Int, to s: State) throws(StoreError) {
        guard s.bytes + count <= limit || s.bytes == 0 else { throw .flushBacklog(bytes: s.bytes) }
    }

    /// Stages `records`, which go one after the other from physical offset `start` of `segment`,
    /// as `add` does each, within room checked by `reserve(_:)`, and all at once: the flusher
    /// takes all of them or none. Writer only.
    func add(reserved records: [[UInt8]], segment: CommitLogSegment, at start: Int64) {
        state.withLock { s in
            var at = start
            for record in records {
                record.withUnsafeBytes { Self.stage($0, segment: segment, at: at, in: &s) }
                at += Int64(record.count)
            }
        }
    }

    private static func stage(_ record: UnsafeRawBufferPointer, segment: CommitLogSegment, at start: Int64, in s: inout State) {
        // An append that failed after staging its record (before publishing it) leaves bytes
        // at and past `start` that the log does not count: this record replaces them.
        while let last = s.pending.last, last.segment === segment, last.end > start {
            if last.start >= start {
                s.bytes -= last.bytes.count
                s.pending.removeLast()
            } else {
                let keep = Int(start - last.start)
                s.bytes -= last.bytes.count - keep
                s.pending[s.pending.count - 1].bytes.removeSubrange(keep...)
            }
        }
        s.bytes += record.count
        if let last = s.pending.indices.last, s.pending[last].segment === segment, s.pending[last].end == start {
            s.pending[last].bytes.append(contentsOf: record)
            return
        }
        var bytes = s.spare.popLast() ?? []
        bytes.reserveCapacity(Self.chunkCapacity)
        bytes.append(contentsOf: record)
        s.pending.append(Chunk(segment: segment, start: start, bytes: bytes))
    }

    /// Writes every staged chunk to its segment file. Flusher only (one caller at a time).
    /// On failure the unwritten chunks stay staged (readable, and retried by the next call).
    func writeOut() throws(StoreError) {
        var chunks = state.withLock { s -> [Chunk] in
            s.inFlight = s.pending
            s.pending = []
            return s.inFlight
        }
        guard !chunks.isEmpty else { return }
        var written = 0
        var failure: StoreError?
        for chunk in chunks {
            do {
                try chunk.segment.file.write(chunk.bytes, at: chunk.start - chunk.segment.start)
            } catch {
                failure = error
                break
            }
            written += 1
        }
        state.withLock { s in
            if written > 0 { committed.store(chunks[written - 1].end, ordering: .releasing) }
            // Unwritten chunks go back in front of what was staged meanwhile.
            s.pending = Array(chunks[written...]) + s.pending
            s.inFlight = []
            for index in 0..<written {
                // Moved out of `chunks` (and `inFlight` let go above), so the buffer is unique
                // and keeps its capacity; grown ones are let go rather than kept forever.
                var bytes = chunks[index].bytes
                chunks[index].bytes = []
                s.bytes -= bytes.count
                guard s.spare.count < 4, bytes.capacity <= 4 * Self.chunkCapacity else { continue }
                bytes.removeAll(keepingCapacity: true)
                s.spare.append(bytes)
            }
        }
        if let failure { throw failure }
    }

    /// The `count` bytes at physical offset `offset` if any of them is still staged (read from
    /// `file`, at segment-relative `fileOffset`, with the staged bytes laid over); `nil` when
    /// none is, and the caller reads the file itself. Any thread.
    func read(at offset: Int64, count: Int, file: StoreFile, fileOffset: Int64) throws(StoreError) -> [UInt8]? {
        let end = offset + Int64(count)
        if end <= committed.load(ordering: .acquiring) { return nil }
        return try state.withLock { (s) throws(StoreError) -> [UInt8]? in
            // Oldest first: if a record was staged again at the offset of one that failed (see
            // `add`), the newer bytes are the ones the log counts, and they are laid over last.
            let overlapping = (s.inFlight + s.pending).filter { $0.start < end && $0.end > offset }
            guard let newest = overlapping.last else { return nil }
            if newest.start <= offset && newest.end >= end {
                // The usual case: whole records never straddle chunks.
                let from = Int(offset - newest.start)
                return Array(newest.bytes[from..<(from + count)])
            }
            // Otherwise the rest is already in the file (rare: costs a pread under the lock).
            var bytes = try file.read(count: count, at: fileOffset)
            guard bytes.count == count else { throw .corruptRecord(physicalOffset: offset, reason: "short read") }
            for chunk in overlapping {
                let lower = max(offset, chunk.start), upper = min(end, chunk.end)
                bytes.withUnsafeMutableBytes { dst in
                    chunk.bytes.withUnsafeBytes { src in
                        UnsafeMutableRawBufferPointer(rebasing: dst[Int(lower - offset)..<Int(upper - offset)])
                            .copyMemory(from: UnsafeRawBufferPointer(rebasing: src[Int(lower - chunk.start)..<Int(upper - chunk.start)]))
                    }
                }
            }
            return bytes
        }
    }
}
