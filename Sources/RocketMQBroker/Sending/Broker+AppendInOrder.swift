import RocketMQStore
import Synchronization

extension Broker {
    /// Appends `messages` in order, all written before any waits (`MessageStore.append(inOrder:)`),
    /// and waits for all at once: with sync flush one group commit covers them, not one each.
    /// For each, whether its record was written, and how the append ended. Due delay messages
    /// and a batch send share it.
    func appendInOrder(_ messages: [EncodedMessage]) async -> [(written: Bool, Result<AppendResult, BrokerError>)] {
        guard !messages.isEmpty else { return [] }
        let replicaTimeout = syncReplicationTimeout
        return await withCheckedContinuation { continuation in
            let gathered = Gathered(count: messages.count, continuation)
            store.append(inOrder: messages, onWritten: { index, _ in gathered.written(index) }) { index, outcome in
                self.finishAppend(of: messages[index], outcome, replicaTimeout: replicaTimeout) { gathered.set(index, $0) }
            }
        }
    }
}

/// The results of appends completing on other threads, handed over once all are in.
private final class Gathered: Sendable {
    typealias Appended = (written: Bool, Result<AppendResult, BrokerError>)
    private let state: Mutex<(written: [Bool], results: [Result<AppendResult, BrokerError>?], left: Int)>
    private let continuation: CheckedContinuation<[Appended], Never>

    init(count: Int, _ continuation: CheckedContinuation<[Appended], Never>) {
        state = Mutex((Array(repeating: false, count: count), Array(repeating: nil, count: count), count))
        self.continuation = continuation
    }

    func written(_ index: Int) {
        state.withLock { $0.written[index] = true }
    }

    func set(_ index: Int, _ result: Result<AppendResult, BrokerError>) {
        let done: [Appended]? = state.withLock { s in
            s.results[index] = result
            s.left -= 1
            guard s.left == 0 else { return nil }
            return zip(s.written, s.results).map { ($0, $1 ?? .failure(.storage("no result"))) }
        }
        if let done { continuation.resume(returning: done) }
    }
}
