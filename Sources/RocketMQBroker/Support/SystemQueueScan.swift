import Foundation
import HeapModule
import Logging
import RocketMQStore
import Synchronization

extension MessageStore {
    /// Calls `body` with every message of `topic`'s queue 0 from `start` (or its first kept
    /// offset) to its end: the start-up read of a broker's own system queues.
    func forEachMessage(systemTopic topic: String, from start: Int64, _ body: (StoredMessage) -> Void) throws(StoreError) {
        var offset = max(start, minOffset(topic: topic, queueId: 0))
        let end = maxOffset(topic: topic, queueId: 0)
        while offset < end {
            let read = try messages(topic: topic, queueId: 0, from: offset, maxCount: 1024)
            read.messages.forEach(body)
            guard read.nextOffset > offset else { break }
            offset = read.nextOffset
        }
    }
}

/// A small JSON file in the config directory saying where a start-up scan of system queues may
/// begin (`TransactionService`, `DelayService`). Without it, or unreadable, the scan reads all.
/// It remembers the mark it last read or wrote, so that saving an unchanged one writes nothing.
final class ScanMark<Mark: Codable & Equatable & Sendable>: Sendable {
    let path: String
    /// What the mark is for, in log messages.
    let what: String
    private let saved = Mutex<Mark?>(nil)

    init(path: String, what: String) {
        self.path = path
        self.what = what
    }

    func read(logger: Logger) -> Mark? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        do {
            let mark = try JSONDecoder().decode(Mark.self, from: data)
            saved.withLock { $0 = mark }
            return mark
        } catch {
            logger.warning("unreadable \(what) mark; reading the whole queue", metadata: ["path": "\(path)", "error": "\(error)"])
            return nil
        }
    }

    /// The mark in the file at `path` now, or nil (no file, or unreadable), without logging:
    /// for readers other than its owner (retention asks what the scans still need).
    static func peek(_ path: String) -> Mark? {
        FileManager.default.contents(atPath: path).flatMap { try? JSONDecoder().decode(Mark.self, from: $0) }
    }

    /// Writes `mark` atomically unless it is the one last read or written (logged when the
    /// write fails: the next save tries again).
    func save(_ mark: Mark, logger: Logger) {
        saved.withLock { saved in
            guard mark != saved else { return }
            do {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                try AtomicFile.write([UInt8](try encoder.encode(mark)), to: path)
                saved = mark
            } catch {
                logger.warning("could not save the \(what) mark", metadata: ["error": "\(error)"])
            }
        }
    }
}

/// A key in a heap that may outlive what it stood for, ordered by `value` (a time or an offset),
/// then by its entry's `id`: a stale key (the entry settled or rescheduled since) is skipped when
/// it reaches the top.
struct HeapKey: Comparable, Sendable {
    var value: Int64
    var id: Int64
    static func < (a: HeapKey, b: HeapKey) -> Bool { (a.value, a.id) < (b.value, b.id) }
}

extension Heap where Element == HeapKey {
    /// Whether stale keys are most of the heap, `liveCount` of its keys being live: then it is
    /// rebuilt from what is live. Lazily skipped keys would otherwise pile up behind one old live
    /// key, and memory would follow everything ever keyed rather than what is live.
    func isMostlyStale(liveCount: Int) -> Bool { count > 2 * liveCount + 1024 }
}

/// The entries of a system queue not settled yet (`DelayService`, `TransactionService`), by their
/// offset in the queue and by the op queue's offset before which none of their op records can be:
/// a start-up scan's mark is the two minima, found without walking every entry. Settled entries
/// leave lazily, when they reach the top, and all at once when they are most of the heap
/// (`isMostlyStale`).
struct UnsettledEntries {
    private var byQueue = Heap<HeapKey>()
    private var byOps = Heap<HeapKey>()

    /// Keys kept, stale ones included (tests).
    var count: Int { byQueue.count }

    /// Counts entry `id` in the mark until it is settled.
    mutating func track(id: Int64, queueOffset: Int64, opsFrom: Int64) {
        byQueue.insert(HeapKey(value: queueOffset, id: id))
        byOps.insert(HeapKey(value: opsFrom, id: id))
    }

    /// The oldest unsettled entry's queue offset and the lowest op offset, nil when none is.
    /// `unsettled`: every entry not settled, as `track` took it (for a rebuild).
    mutating func oldest(
        isUnsettled: (Int64) -> Bool, unsettled: () -> [(id: Int64, queueOffset: Int64, opsFrom: Int64)], unsettledCount: Int
    ) -> (queueOffset: Int64, opsFrom: Int64)? {
        while let top = byQueue.min, !isUnsettled(top.id) { _ = byQueue.removeMin() }
        while let top = byOps.min, !isUnsettled(top.id) { _ = byOps.removeMin() }
        // Both heaps hold keys of the same entries, so they grow stale together.
        if byQueue.isMostlyStale(liveCount: unsettledCount) {
            let all = unsettled()
            byQueue = Heap(all.map { HeapKey(value: $0.queueOffset, id: $0.id) })
            byOps = Heap(all.map { HeapKey(value: $0.opsFrom, id: $0.id) })
        }
        // Both hold the same unsettled entries: both are empty or neither is.
        guard let queueOffset = byQueue.min?.value, let opsFrom = byOps.min?.value else { return nil }
        return (queueOffset, opsFrom)
    }
}
