import Foundation
import Logging
import Synchronization

/// How far the segment being written is prepared for the writer: zeros written past the log's end
/// (the file system reserves their blocks, so a full disk fails the append that needs them, and an
/// `fdatasync` over them later changes no metadata) and, for a mapped writer, their pages mapped.
///
/// Both the writer (when it catches up with the preparation) and the ``SegmentPreparer``'s thread
/// extend it, one stretch at a time under one lock, so every stretch is zeroed exactly once and
/// only above `prepared`; the writer writes only below `prepared`. So no zero ever lands on a
/// record. Preparation starts at the first page boundary at or above the write position the
/// segment was opened at: the page below may hold earlier records.
final class SegmentPreparation: Sendable {
    /// Bytes prepared at a time: one `pwrite` of zeros (and one populate) per 256 KiB.
    static let step = 256 << 10

    let file: StoreFile
    let size: Int
    /// The writer's mapping, whose pages are populated once zeroed (`nil`: staged writes).
    private let mapping: SegmentWriteMapping?
    /// The prepared end, under the lock; `finished`: the segment is ending, prepare no more.
    private let state: Mutex<(prepared: Int, finished: Bool)>
    /// The prepared end as last published, read by the writer without the lock.
    private let published: Atomic<Int>
    /// Stretches prepared by the writer itself and by the preparer's thread (tests, figures).
    private let stretches = Mutex<(byWriter: Int, ahead: Int)>((0, 0))
    /// Tests: called by the preparer's thread with each stretch it is about to zero, holding the lock.
    private let beforeStepAhead: (@Sendable (Range<Int>) -> Void)?

    init(file: StoreFile, size: Int, writePosition: Int, mapping: SegmentWriteMapping?, beforeStepAhead: (@Sendable (Range<Int>) -> Void)? = nil) {
        let start = min(size, (writePosition + 4095) / 4096 * 4096)
        self.file = file
        self.size = size
        self.mapping = mapping
        self.state = Mutex((start, false))
        self.published = Atomic(start)
        self.beforeStepAhead = beforeStepAhead
    }

    /// Everything of the segment below this is prepared.
    var prepared: Int { published.load(ordering: .acquiring) }

    var statistics: (byWriter: Int, ahead: Int) { stretches.withLock { $0 } }

    /// The writer: makes sure a write ending at `end` lands on prepared bytes, preparing what
    /// is missing itself (waiting for a stretch the preparer is writing). Throws when the file
    /// system cannot store a stretch (a full disk): nothing of the record is written then.
    func ensure(upTo end: Int) throws(StoreError) {
        guard end > prepared else { return }
        try state.withLock { (state) throws(StoreError) in
            while state.prepared < end && state.prepared < size {
                try extend(&state.prepared)
                stretches.withLock { $0.byWriter += 1 }
            }
        }
    }

    /// The preparer: prepares one stretch if the prepared end is below `target`. Returns whether
    /// it did (`false`: there is nothing to do up to `target`, or the segment is ending).
    func stepAhead(toward target: Int) throws(StoreError) -> Bool {
        try state.withLock { (state) throws(StoreError) -> Bool in
            guard !state.finished, state.prepared < min(target, size) else { return false }
            beforeStepAhead?(state.prepared..<min(size, state.prepared + Self.step))
            try extend(&state.prepared)
            stretches.withLock { $0.ahead += 1 }
            return true
        }
    }

    /// The writer is about to end the segment (an end-of-segment marker from the write position
    /// on): waits for a stretch being prepared, and no zeros are written after this returns.
    func finish() {
        state.withLock { $0.finished = true }
    }

    private func extend(_ prepared: inout Int) throws(StoreError) {
        let to = min(size, prepared + Self.step)
        try file.writeZeros(prepared..<to)
        mapping?.populate(prepared..<to)
        prepared = to
        published.store(to, ordering: .releasing)
    }
}

/// Keeps the segment being written prepared ahead of the CommitLog's writer, on a thread of its
/// own. Done by the writer, under the store's writer lock, preparing a stretch (a 256 KiB `pwrite`
/// of zeros, and populating its pages for a mapped writer) took ~0.2 ms every 256 appends of
/// 1 KiB, ~5% of a broker's CPU under load, while every other appender (the other event loops,
/// the consumption journal) waited for the lock.
///
/// The thread starts with the first request and ends with ``stop()``. If it falls behind or fails
/// (a full disk), the writer prepares what it needs itself (``SegmentPreparation/ensure(upTo:)``),
/// and reports the failure with the append that needed the stretch.
/// `@unchecked Sendable`: all mutable state is guarded by `condition`.
final class SegmentPreparer: @unchecked Sendable {
    private let condition = NSCondition()
    private var job: (preparation: SegmentPreparation, target: Int)?
    private var running = false
    private var stopped = false
    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    /// Asks for `preparation` to be prepared up to `target` (segment-relative). Replaces any
    /// earlier request: only the segment being written is prepared.
    func request(_ preparation: SegmentPreparation, upTo target: Int) {
        condition.lock()
        defer { condition.unlock() }
        guard !stopped else { return }
        job = (preparation, target)
        if !running {
            running = true
            StoreThread.start(named: "mq-prepare") { self.run() }
        }
        condition.signal()
    }

    /// Ends the thread, waiting for a stretch it is writing: after this returns it writes nothing
    /// (a store reopened in the same directory must not get zeros from an earlier one). Idempotent.
    func stop() {
        condition.lock()
        stopped = true
        job = nil
        condition.broadcast()
        while running { condition.wait() }
        condition.unlock()
    }

    /// Tests: waits (up to `timeout`) until every request so far is served; whether it was.
    func waitUntilIdleForTesting(timeout: Duration) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout.timeInterval)
        condition.lock()
        defer { condition.unlock() }
        while job != nil && !stopped {
            guard condition.wait(until: deadline) else { return job == nil }
        }
        return true
    }

    private func run() {
        condition.lock()
        while true {
            while job == nil && !stopped { condition.wait() }
            guard let current = job, !stopped else { break }
            condition.unlock()
            var more: Bool
            do {
                more = try current.preparation.stepAhead(toward: current.target)
            } catch {
                // The writer meets the same error when it needs the stretch, and fails that append.
                logger.debug("cannot prepare the CommitLog ahead of the writer", metadata: ["error": "\(error)"])
                more = false
            }
            condition.lock()
            if !more, let latest = job, latest.preparation === current.preparation, latest.target == current.target {
                job = nil
                condition.broadcast()
            }
        }
        running = false
        condition.broadcast()
        condition.unlock()
    }
}
