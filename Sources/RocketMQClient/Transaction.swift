import Synchronization

/// How a transaction ends: its messages delivered (`commit`), dropped (`rollback`), or not
/// decided yet (`unknown`: a checker's answer that leaves the transaction open, to be
/// checked back again later).
public enum TransactionResolution: Sendable, Hashable {
    case commit
    case rollback
    case unknown

    /// As `EndTransaction` carries it; `unknown` is the protocol's unspecified resolution.
    var proto: Apache_Rocketmq_V2_TransactionResolution {
        switch self {
        case .commit: .commit
        case .rollback: .rollback
        case .unknown: .unspecified
        }
    }
}

/// Answers the broker's check-back of a transaction this producer's process left open (it
/// crashed, or its commit never arrived): look up the local transaction the message belongs to
/// (by a key or property the application set) and say how it ended. Runs on a task of its own.
public typealias TransactionChecker = @Sendable (ReceivedMessage) async -> TransactionResolution

/// Messages sent as one local transaction: none is delivered until ``commit()``; after
/// ``rollback()`` none ever is. Made by ``Producer/beginTransaction()``.
///
/// If the process ends before either, the broker asks the producer's
/// ``ProducerOptions/transactionChecker`` (of any producer of the topic) after its transaction
/// timeout, and keeps asking until it gets `commit` or `rollback`.
public final class Transaction: Sendable {
    private struct Half: Sendable {
        var receipt: SendReceipt
        var transactionId: String
        var endpoint: Endpoint
    }

    private enum State: Sendable {
        case open([Half])
        case ending
        /// Ending it this way failed for these halves (their broker did not answer, say): ending
        /// it the same way again tries them once more; the broker checks them back meanwhile.
        case unfinished(TransactionResolution, [Half])
        case ended(TransactionResolution)
    }

    private let producer: Producer
    private let state = Mutex(State.open([]))

    init(producer: Producer) {
        self.producer = producer
    }

    /// Sends `message` as a half message of this transaction: stored, not delivered.
    public func send(_ message: Message) async throws(RocketMQError) -> SendReceipt {
        try state.withLock { (state) throws(RocketMQError) in
            guard case .open = state else { throw .invalidArgument("no message can join a transaction that is ending or has ended") }
        }
        let (receipt, transactionId, endpoint) = try await producer.sendHalf(message)
        try state.withLock { (state) throws(RocketMQError) in
            guard case .open(var halves) = state else {
                throw .invalidArgument("the transaction ended while its message was being sent; it stays open at the broker until checked back")
            }
            halves.append(Half(receipt: receipt, transactionId: transactionId, endpoint: endpoint))
            state = .open(halves)
        }
        return receipt
    }

    /// Delivers every message sent in the transaction.
    ///
    /// If it throws, the messages it could not commit stay open: call `commit()` again to retry
    /// them (already committed ones are not sent again), or leave them to the broker, which
    /// checks them back with ``ProducerOptions/transactionChecker``.
    public func commit() async throws(RocketMQError) {
        try await end(.commit)
    }

    /// Drops every message sent in the transaction. If it throws, `rollback()` may be called
    /// again, as ``commit()`` may.
    public func rollback() async throws(RocketMQError) {
        try await end(.rollback)
    }

    private func end(_ resolution: TransactionResolution) async throws(RocketMQError) {
        let halves = try state.withLock { (state) throws(RocketMQError) -> [Half] in
            switch state {
            case .open(let halves):
                guard !halves.isEmpty else { throw .invalidArgument("the transaction has no message to end") }
                state = .ending
                return halves
            case .unfinished(let how, let halves):
                // Half of it committed and half rolled back would break the transaction's promise.
                guard how == resolution else {
                    throw .invalidArgument("the transaction is part-way through its \(how); end it that way again")
                }
                state = .ending
                return halves
            case .ending: throw .invalidArgument("the transaction is already ending")
            case .ended(let how): throw .invalidArgument("the transaction has already ended (\(how))")
            }
        }
        var failure: RocketMQError?
        var unfinished: [Half] = []
        for half in halves {
            do throws(RocketMQError) {
                try await producer.session.endTransaction(
                    endpoint: await endpoint(of: half), topic: half.receipt.topic, messageId: half.receipt.messageId,
                    transactionId: half.transactionId, resolution: resolution, fromCheck: false)
            } catch {
                failure = failure ?? error
                // Kept for another try, unless the broker's answer is final (the transaction is
                // unknown to it, or was already resolved: by a check-back, say). The broker checks
                // it back meanwhile. The first failure is reported.
                if case .status = error, !error.isRetryable { continue }
                unfinished.append(half)
            }
        }
        state.withLock { $0 = unfinished.isEmpty ? .ended(resolution) : .unfinished(resolution, unfinished) }
        if let failure { throw failure }
    }

    /// Where `half`'s broker answers now: its address in the topic's route (a failover may have
    /// moved it since the half message was sent), else the address the half message went to.
    private func endpoint(of half: Half) async -> Endpoint {
        guard let route = try? await producer.session.route(for: half.receipt.topic),
              let current = route.queues.first(where: { $0.brokerName == half.receipt.brokerName && $0.endpoint != nil })?.endpoint
        else { return half.endpoint }
        return current
    }
}
