import Foundation
import RocketMQStore
import Synchronization

/// Writes a snapshot file (encoded as JSON, replaced atomically and durably) off the caller's
/// actor, one write at a time on a queue of its own, skipping any snapshot older than one
/// already written: two callers (the periodic one and shutdown) may race.
final class SnapshotWriter: Sendable {
    private let path: String
    private let queue: DispatchQueue
    private let written = Mutex<UInt64>(0)

    init(path: String) {
        self.path = path
        queue = DispatchQueue(label: "rocketmq.snapshot-writer")
    }

    /// Writes `snapshot`, numbered `sequence` by its taker (increasing), unless a later one is
    /// already on disk; returns once it is (or was skipped).
    func write(_ snapshot: some Encodable & Sendable, sequence: UInt64) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            queue.async {
                guard self.written.withLock({ $0 }) < sequence else { return continuation.resume() }
                do {
                    try AtomicFile.write([UInt8](try JSONEncoder().encode(snapshot)), to: self.path)
                    self.written.withLock { $0 = sequence }
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    /// Returns once every write asked for before has finished, with the newest sequence on disk.
    func drain() async -> UInt64 {
        await withCheckedContinuation { (continuation: CheckedContinuation<UInt64, Never>) in
            queue.async { continuation.resume(returning: self.written.withLock { $0 }) }
        }
    }

    /// Tests: holds the writes asked for from now on until `gate` is signalled.
    func holdForTesting(until gate: DispatchSemaphore) {
        queue.async { gate.wait() }
    }
}
