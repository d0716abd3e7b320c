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
            guard case .open = state else { throw .invalidArgument("the transaction has already ended") }
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
    public func commit() async throws(RocketMQError) {
        try await end(.commit)
    }

    /// Drops every message sent in the transaction.
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
            case .ending: throw .invalidArgument("the transaction is already ending")
            case .ended(let how): throw .invalidArgument("the transaction has already ended (\(how))")
            }
        }
        var failure: RocketMQError?
        for half in halves {
            do throws(RocketMQError) {
                try await producer.session.endTransaction(
                    endpoint: half.endpoint, topic: half.receipt.topic, messageId: half.receipt.messageId,
                    transactionId: half.transactionId, resolution: resolution, fromCheck: false)
            } catch {
                // The broker checks this one back later; report the first failure.
                failure = failure ?? error
            }
        }
        state.withLock { $0 = .ended(resolution) }
        if let failure { throw failure }
    }
}
