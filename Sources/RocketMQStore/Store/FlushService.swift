import Foundation
import Logging
import Synchronization

/// Syncs the CommitLog to disk: periodically for async flush, and as **group commit** for
/// sync flush.
///
/// Sync flush: each append registers its end offset and a completion; one flusher thread
/// takes the written position, does one `fdatasync` per touched segment, and completes every
/// waiter it covered, on its own thread. Appends that arrive during an `fdatasync` form the next group. A
/// watchdog thread fails waiters older than the group-commit timeout with
/// `StoreError.flushTimeout`, so a stuck disk never yields a false success.
///
/// Dedicated threads rather than tasks: `fdatasync` blocks for milliseconds and must not
/// hold a cooperative-pool thread. `@unchecked Sendable`: all mutable state is guarded by `condition`.
final class FlushService: @unchecked Sendable {
    /// Called once with `nil` when the append is on disk, or with the error that ended the wait.
    typealias Completion = @Sendable (StoreError?) -> Void

    private struct Waiter {
        var end: Int64
        /// The appends it stands for (a batch waits once for all of its messages).
        var appends: Int
        var deadline: ContinuousClock.Instant
        var completion: Completion
    }

    private let commitLog: CommitLog
    private let mode: FlushMode
    private let interval: Duration
    private let dirtyBytes: Int64
    private let timeout: Duration
    private let logger: Logger
    private let condition = NSCondition()
    private var waiters: [Waiter] = []
    private var requested = false
    private var stopping = false
    /// Whether the flusher flushes once more when it stops (`false`: a simulated crash).
    private var flushOnStop = true
    private var running = 0
    private let stopped = NSCondition()
    private var held = false
    /// The last flush failure logged (flusher only): a failure that persists is logged once.
    private var lastFailure: StoreError?
    private var totals = FlushStatistics()
    /// Sync-flush appends found already covered by an `fdatasync` when they asked to wait (the
    /// round that synced them returned in between): acknowledged by that group, counted here
    /// without taking the lock.
    private let coveredOnArrival = Atomic<Int>(0)
    /// Called with the new flushed position after each round that synced something (the store's
    /// growth observer, for a sync-flush master whose slaves copy only what is on disk).
    let flushedObserver = Mutex<OffsetObserver?>(nil)
    /// Number of flush rounds done (for tests and benchmarks).
    var rounds: Int { statistics.flushes }

    /// What the flusher did since the store opened (metrics, benchmarks).
    var statistics: FlushStatistics {
        condition.lock()
        var snapshot = totals
        condition.unlock()
        snapshot.groupCommitAppends += coveredOnArrival.load(ordering: .relaxed)
        return snapshot
    }

    /// Acknowledges a sync-flush append an earlier `fdatasync` already covered.
    private func alreadyFlushed(_ appends: Int = 1) {
        coveredOnArrival.add(appends, ordering: .relaxed)
    }

    /// Appends waiting for a sync flush now (for tests).
    var waitingAppends: Int {
        condition.lock()
        defer { condition.unlock() }
        return waiters.reduce(0) { $0 + $1.appends }
    }

    /// Tests: while held, the flusher does not flush (simulates a stuck disk).
    func holdFlushes(_ hold: Bool) {
        condition.lock()
        held = hold
        condition.broadcast()
        condition.unlock()
    }

    init(commitLog: CommitLog, mode: FlushMode, interval: Duration, dirtyPages: Int, timeout: Duration, logger: Logger) {
        self.commitLog = commitLog
        self.mode = mode
        self.interval = interval
        self.dirtyBytes = Int64(max(1, dirtyPages)) * 4096
        self.timeout = timeout
        self.logger = logger
    }

    func start() {
        spawn("store-flusher") { $0.flushLoop() }
        if mode == .sync { spawn("flush-watchdog") { $0.watchdogLoop() } }
    }

    private func spawn(_ name: String, _ body: @escaping @Sendable (FlushService) -> Void) {
        stopped.lock()
        running += 1
        stopped.unlock()
        StoreThread.start(named: name) { [self] in
            body(self)
            self.stopped.lock()
            self.running -= 1
            self.stopped.broadcast()
            self.stopped.unlock()
        }
    }

    /// Sync flush: returns once an `fdatasync` covering everything below `end` returned.
    func waitForFlush(upTo end: Int64) async throws(StoreError) {
        if commitLog.flushedPosition >= end { return alreadyFlushed() }
        let failure = await withCheckedContinuation { (continuation: CheckedContinuation<StoreError?, Never>) in
            whenFlushed(upTo: end) { continuation.resume(returning: $0) }
        }
        if let failure { throw failure }
    }

    /// Sync flush: calls `completion` once an `fdatasync` covering everything below `end`
    /// returned (with `nil`), or with the error that ended the wait (a failed flush, the
    /// group-commit timeout, shutdown). At once on this thread if it is already on disk;
    /// otherwise on the flusher's (or watchdog's) thread, so keep it short. `appends`: how many
    /// appends the wait stands for, as the group-commit statistics count them.
    func whenFlushed(upTo end: Int64, appends: Int = 1, _ completion: @escaping Completion) {
        if commitLog.flushedPosition >= end {
            alreadyFlushed(appends)
            return completion(nil)
        }
        condition.lock()
        if stopping {
            condition.unlock()
            return completion(.shutDown)
        }
        if commitLog.flushedPosition >= end {
            condition.unlock()
            alreadyFlushed(appends)
            return completion(nil)
        }
        waiters.append(Waiter(end: end, appends: appends, deadline: .now + timeout, completion: completion))
        condition.signal()
        condition.unlock()
    }

    /// Async flush: call after a write; wakes the flusher early once enough is dirty.
    func noteWritten(upTo end: Int64) {
        if end - commitLog.flushedPosition >= dirtyBytes {
            condition.lock()
            if !requested {
                requested = true
                condition.signal()
            }
            condition.unlock()
        }
    }

    private func flushLoop() {
        let seconds = interval.timeInterval
        while true {
            let idleFrom = ContinuousClock.now
            condition.lock()
            while !stopping && waiters.isEmpty && !requested {
                if !condition.wait(until: Date(timeIntervalSinceNow: seconds)) { break }
            }
            let stop = stopping
            requested = false
            if stop && !flushOnStop {
                condition.unlock()
                break
            }
            if held && !stop {
                condition.unlock()
                Thread.sleep(forTimeInterval: 0.001)
                continue
            }
            condition.unlock()

            let flushFrom = ContinuousClock.now
            let synced = commitLog.flushedPosition
            var failure: StoreError?
            do { try commitLog.flush() } catch { failure = error }
            let flushed = commitLog.flushedPosition
            let flushedAt = ContinuousClock.now

            condition.lock()
            totals.idle += flushFrom - idleFrom
            if flushed > synced || failure != nil {  // a round with nothing to sync is idle time
                totals.flushes += 1
                totals.flushing += flushedAt - flushFrom
            } else {
                totals.idle += flushedAt - flushFrom
            }
            var done = [Waiter]()
            if let failure {
                done = waiters
                waiters.removeAll()
                condition.unlock()
                if failure != lastFailure {
                    logger.error("CommitLog flush failed", metadata: ["error": "\(failure)"])
                    lastFailure = failure
                }
                for w in done { w.completion(failure) }
            } else {
                waiters.removeAll { w in
                    if w.end <= flushed { done.append(w); return true }
                    return false
                }
                totals.groupCommitAppends += done.reduce(0) { $0 + $1.appends }
                condition.unlock()
                for w in done { w.completion(nil) }
                if flushed > synced, let observer = flushedObserver.withLock({ $0 }) { observer.notify(flushed) }
            }
            if stop { break }
        }
    }

    private func watchdogLoop() {
        let tick = min(max(timeout / 10, .milliseconds(1)), .milliseconds(50))
        let seconds = tick.timeInterval
        while true {
            condition.lock()
            if stopping { condition.unlock(); return }
            let now = ContinuousClock.now
            var expired = [Waiter]()
            waiters.removeAll { w in
                if w.deadline <= now { expired.append(w); return true }
                return false
            }
            condition.unlock()
            if let last = expired.last {
                logger.warning("group commit timed out", metadata: ["appends": "\(expired.reduce(0) { $0 + $1.appends })", "end": "\(last.end)"])
            }
            for w in expired { w.completion(.flushTimeout(physicalOffset: w.end)) }
            Thread.sleep(forTimeInterval: seconds)
        }
    }

    /// Flushes what is written (unless `flushing` is false, as in a crash), completes the waiters
    /// that covers, fails the rest, and stops the threads.
    func stop(flushing: Bool = true) {
        condition.lock()
        stopping = true
        flushOnStop = flushing
        condition.broadcast()
        condition.unlock()
        stopped.lock()
        while running > 0 { stopped.wait() }
        stopped.unlock()
        condition.lock()
        let left = waiters
        waiters.removeAll()
        condition.unlock()
        for w in left { w.completion(.shutDown) }
    }
}

/// Cumulative counts of the CommitLog flusher, since the store opened. With sync flush,
/// `groupCommitAppends / flushes` is the mean group size, and `idle` the time the flusher waited
/// for a first append to flush: a flusher often idle under load means the appends, not the disk,
/// set the pace.
public struct FlushStatistics: Sendable, Equatable {
    /// Flush rounds that synced something (or failed): each writes out what is staged and
    /// `fdatasync`s every touched segment.
    public var flushes = 0
    /// Sync flush: appends acknowledged by those rounds (those a round had synced before they
    /// asked to wait included).
    public var groupCommitAppends = 0
    /// Time spent writing out and syncing.
    public var flushing = Duration.zero
    /// Time spent waiting for something to flush (sync flush: the first append of a group;
    /// async flush: the interval or the dirty-bytes trigger).
    public var idle = Duration.zero

    public init() {}
}
