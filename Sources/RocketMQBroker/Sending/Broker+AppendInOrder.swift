import RocketMQStore
import Synchronization

extension Broker {
    /// Appends `messages` in order, all written before any waits (`MessageStore.append(inOrder:)`),
    /// and waits for all at once: with sync flush one group commit covers them, not one each.
    /// For each, whether its record was written, and how the append ended. Due delay messages
    /// use it: each stands alone, where a batch send is stored whole or not at all (`appendBatch`).
    /// `onWritten` is told where each record went as soon as it is written (on this thread).
    func appendInOrder(
        _ messages: [EncodedMessage], onWritten: (Int, AppendResult) -> Void = { _, _ in }
    ) async -> [(written: Bool, Result<AppendResult, BrokerError>)] {
        guard !messages.isEmpty else { return [] }
        let replicaTimeout = syncReplicationTimeout
        return await withCheckedContinuation { continuation in
            let gathered = Gathered(count: messages.count, continuation)
            store.append(inOrder: messages, onWritten: { index, result in
                gathered.written(index)
                onWritten(index, result)
            }) { index, outcome in
                self.finishAppend(of: messages[index], outcome, replicaTimeout: replicaTimeout) { gathered.set(index, $0) }
            }
        }
    }
}

extension Broker {
    /// Appends `messages` as one batch (`MessageStore.append(batch:)`): all stored, or none,
    /// as RocketMQ stores a batch; then waits for its flush and, on a sync master, for its slave,
    /// as `append` does for one message. Whether the batch was written (a failure after that,
    /// a flush or a slave that did not confirm it, leaves all of it stored), and the results.
    func appendBatch(_ messages: [EncodedMessage]) async -> (written: Bool, Result<[AppendResult], BrokerError>) {
        let replicaTimeout = syncReplicationTimeout
        return await withCheckedContinuation { continuation in
            let written = Atomic(false)
            store.append(batch: messages, onWritten: { _ in written.store(true, ordering: .relaxed) }) { outcome in
                let wrote = written.load(ordering: .relaxed)
                let results: [AppendResult]
                switch outcome {
                case .failure(let error): return continuation.resume(returning: (wrote, .failure(self.brokerError(error))))
                case .success(let done): results = done
                }
                for queue in Set(messages.map { QueueID(topic: $0.topic, queueId: $0.queueId) }) {
                    self.arrivals.signal(queue.topic, queueId: queue.queueId)
                }
                guard let replicaTimeout, let last = results.last else { return continuation.resume(returning: (true, .success(results))) }
                self.replication.whenReplicated(upTo: last.physicalOffset + Int64(last.wroteBytes), timeout: replicaTimeout) { error in
                    continuation.resume(returning: (true, error.map { .failure($0) } ?? .success(results)))
                }
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
