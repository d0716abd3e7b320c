import Foundation
import Logging

/// Syncs the CommitLog to disk: periodically for async flush, and as **group commit** for
/// sync flush.
///
/// Sync flush: each append registers its end offset and a continuation; one flusher thread
/// takes the written position, does one `fdatasync` per touched segment, and resumes every
/// waiter it covered. Appends that arrive during an `fdatasync` form the next group. A
/// watchdog thread fails waiters older than the group-commit timeout with
/// `StoreError.flushTimeout`, so a stuck disk never yields a false success.
///
/// Dedicated threads rather than tasks: `fdatasync` blocks for milliseconds and must not
/// hold a cooperative-pool thread. `@unchecked Sendable`: all mutable state is guarded by `condition`.
final class FlushService: @unchecked Sendable {
    private struct Waiter {
        var end: Int64
        var deadline: ContinuousClock.Instant
        var continuation: CheckedContinuation<Void, any Error>
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
    private var running = 0
    private let stopped = NSCondition()
    private var held = false
    private var _rounds = 0
    /// Number of flush rounds done (for tests and benchmarks).
    var rounds: Int {
        condition.lock()
        defer { condition.unlock() }
        return _rounds
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
        if mode == .sync { spawn("store-flush-watchdog") { $0.watchdogLoop() } }
    }

    private func spawn(_ name: String, _ body: @escaping @Sendable (FlushService) -> Void) {
        stopped.lock()
        running += 1
        stopped.unlock()
        let thread = Thread { [self] in
            body(self)
            self.stopped.lock()
            self.running -= 1
            self.stopped.broadcast()
            self.stopped.unlock()
        }
        thread.name = name
        thread.start()
    }

    /// Sync flush: returns once an `fdatasync` covering everything below `end` returned.
    func waitForFlush(upTo end: Int64) async throws(StoreError) {
        if commitLog.flushedPosition >= end { return }
        do {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                condition.lock()
                if stopping {
                    condition.unlock()
                    continuation.resume(throwing: StoreError.shutDown)
                    return
                }
                if commitLog.flushedPosition >= end {
                    condition.unlock()
                    continuation.resume()
                    return
                }
                waiters.append(Waiter(end: end, deadline: .now + timeout, continuation: continuation))
                condition.signal()
                condition.unlock()
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw .flushTimeout(physicalOffset: end)
        }
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
        let seconds = Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18
        while true {
            condition.lock()
            while !stopping && waiters.isEmpty && !requested {
                if !condition.wait(until: Date(timeIntervalSinceNow: seconds)) { break }
            }
            let stop = stopping
            requested = false
            if held && !stop {
                condition.unlock()
                Thread.sleep(forTimeInterval: 0.001)
                continue
            }
            condition.unlock()

            var failure: StoreError?
            do { try commitLog.flush() } catch { failure = error }
            let flushed = commitLog.flushedPosition

            condition.lock()
            _rounds += 1
            var done = [Waiter]()
            if let failure {
                done = waiters
                waiters.removeAll()
                condition.unlock()
                logger.error("CommitLog flush failed", metadata: ["error": "\(failure)"])
                for w in done { w.continuation.resume(throwing: failure) }
            } else {
                waiters.removeAll { w in
                    if w.end <= flushed { done.append(w); return true }
                    return false
                }
                condition.unlock()
                for w in done { w.continuation.resume() }
            }
            if stop { break }
        }
    }

    private func watchdogLoop() {
        let tick = min(max(timeout / 10, .milliseconds(1)), .milliseconds(50))
        let seconds = Double(tick.components.seconds) + Double(tick.components.attoseconds) / 1e18
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
            for w in expired {
                logger.warning("group commit timed out", metadata: ["end": "\(w.end)"])
                w.continuation.resume(throwing: StoreError.flushTimeout(physicalOffset: w.end))
            }
            Thread.sleep(forTimeInterval: seconds)
        }
    }

    /// Flushes what is written, resumes the waiters it covers, fails the rest, and stops the threads.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
        stopped.lock()
        while running > 0 { stopped.wait() }
        stopped.unlock()
        condition.lock()
        let left = waiters
        waiters.removeAll()
        condition.unlock()
        for w in left { w.continuation.resume(throwing: StoreError.shutDown) }
    }
}
