import Foundation
import Logging
import RocketMQStore

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
struct ScanMark<Mark: Codable & Equatable & Sendable>: Sendable {
    let path: String
    /// What the mark is for, in log messages.
    let what: String

    func read(logger: Logger) -> Mark? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        do {
            return try JSONDecoder().decode(Mark.self, from: data)
        } catch {
            logger.warning("unreadable \(what) mark; reading the whole queue", metadata: ["path": "\(path)", "error": "\(error)"])
            return nil
        }
    }

    /// Writes `mark` atomically; false (logged) when it could not.
    func write(_ mark: Mark, logger: Logger) -> Bool {
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            try AtomicFile.write([UInt8](try encoder.encode(mark)), to: path)
            return true
        } catch {
            logger.warning("could not save the \(what) mark", metadata: ["error": "\(error)"])
            return false
        }
    }
}
