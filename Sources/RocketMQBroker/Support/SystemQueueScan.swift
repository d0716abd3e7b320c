import Foundation
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
