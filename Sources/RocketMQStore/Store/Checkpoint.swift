import Foundation

/// `<data>/checkpoint`: how far the store is known to be safely on disk.
///
/// `safeOffset` is a CommitLog record boundary at or below which the CommitLog *and* the
/// ConsumeQueues/IndexFiles derived from it were synced; crash recovery starts scanning
/// there. `cleanShutdown` is true only between a clean `shutdown()` and the next start.
struct Checkpoint: Codable, Equatable {
    /// End of the CommitLog: everything written at a clean shutdown, the flushed end otherwise.
    var commitLogEnd: Int64
    var safeOffset: Int64
    var cleanShutdown: Bool
    var timestamp: Int64

    static func load(_ path: String) throws(StoreError) -> Checkpoint? {
        guard let bytes = try AtomicFile.read(path) else { return nil }
        do {
            return try JSONDecoder().decode(Checkpoint.self, from: Data(bytes))
        } catch {
            // A checkpoint is written atomically, so this means someone else wrote it.
            throw .badFile(path: path, reason: "unreadable checkpoint: \(error)")
        }
    }

    func save(_ path: String) throws(StoreError) {
        let data: Data
        do { data = try JSONEncoder().encode(self) } catch {
            throw .badFile(path: path, reason: "cannot encode checkpoint")
        }
        try AtomicFile.write(Array(data), to: path)
    }
}
