import Foundation
import RocketMQAPI
@testable import RocketMQBroker
@testable import RocketMQStore
import Testing

@Suite("Transactions: half messages, their end, check-backs and restarts")
struct TransactionServiceTests {
    private func half(_ body: String, id: String, topic: String = "orders", queue: Int32 = 1) -> MessageToAppend {
        MessageToAppend(
            topic: topic, queueId: queue, body: Array(body.utf8),
            properties: [MessageProperty.uniqueKey: id, "__MESSAGE_TYPE": "TRANSACTION", "user": "u"], bornTimestamp: 1_700_000_000_000)
    }

    private func visible(_ broker: Broker, topic: String = "orders", queue: Int32 = 1) throws -> [StoredMessage] {
        try broker.store.messages(topic: topic, queueId: queue, from: 0, maxCount: 100).messages
    }

    @Test("a half message is stored apart; commit appends it to its real queue once, rollback never")
    func commitAndRollback() async throws {
        try await withBroker { broker in
            let tx = broker.transactions
            let a = try await tx.prepare(half("a", id: "ID-A"), firstCheck: .seconds(60), producerGave: false, broker: broker)
            let b = try await tx.prepare(half("b", id: "ID-B"), firstCheck: .seconds(60), producerGave: false, broker: broker)
            #expect(try visible(broker).isEmpty)
            #expect(tx.openCount == 2)

            try await tx.end(transactionId: a, messageId: "ID-A", topic: "orders", resolution: .commit, fromCheck: false, broker: broker)
            try await tx.end(transactionId: b, messageId: "ID-B", topic: "orders", resolution: .rollback, fromCheck: false, broker: broker)
            let stored = try visible(broker)
            #expect(stored.map { String(decoding: $0.body, as: UTF8.self) } == ["a"])
            #expect(stored.first?.properties["user"] == "u")
            #expect(stored.first?.properties[StoredProperty.realTopic] == nil, "the real message carries no half-message bookkeeping")
            #expect(stored.first?.uniqueId == "ID-A")
            #expect(stored.first?.preparedTransactionOffset == MessageID.physicalOffset(of: a), "it points back at its half message")
            #expect(MessageID.physicalOffset(of: a) != MessageID.physicalOffset(of: b))
            #expect(tx.openCount == 0)

            // A repeat is answered as done and appends nothing; the opposite is refused.
            try await tx.end(transactionId: a, messageId: "ID-A", topic: "orders", resolution: .commit, fromCheck: false, broker: broker)
            await #expect(throws: BrokerError.self) {
                try await tx.end(transactionId: a, messageId: "ID-A", topic: "orders", resolution: .rollback, fromCheck: false, broker: broker)
            }
            #expect(try visible(broker).count == 1)
        }
    }

    @Test("a commit lands in a write queue, also when its queue stopped taking writes since the half message")
    func commitAfterTheWriteCountWasLowered() async throws {
        try await withBroker { broker in
            let tx = broker.transactions
            try broker.upsertTopic(TopicConfig(name: "orders", queueCount: 4, messageTypes: ["TRANSACTION"]))
            let id = try await tx.prepare(half("late", id: "ID-L", queue: 3), firstCheck: .seconds(60), producerGave: false, broker: broker)
            try broker.upsertTopic(TopicConfig(name: "orders", readQueues: 4, writeQueues: 2, messageTypes: ["TRANSACTION"]))
            try await tx.end(transactionId: id, messageId: "ID-L", topic: "orders", resolution: .commit, fromCheck: false, broker: broker)
            #expect(try visible(broker, queue: 3).isEmpty, "queue 3 takes no writes now")
            #expect(try visible(broker, queue: 1).map { String(decoding: $0.body, as: UTF8.self) } == ["late"])
        }
    }

    @Test("a commit after its topic was deleted discards the message, also when a topic of the name exists again")
    func commitAfterTheTopicWasDeleted() async throws {
        try await withBroker { broker in
            let tx = broker.transactions
            try broker.upsertTopic(TopicConfig(name: "orders", queueCount: 2, messageTypes: ["TRANSACTION"]))
            let before = try await tx.prepare(half("before", id: "ID-B"), firstCheck: .seconds(60), producerGave: false, broker: broker)
            try broker.deleteTopic("orders")
            try broker.upsertTopic(TopicConfig(name: "orders", queueCount: 2, messageTypes: ["TRANSACTION"]))
            let after = try await tx.prepare(half("after", id: "ID-A"), firstCheck: .seconds(60), producerGave: false, broker: broker)
            for _ in 0..<2 {  // the same answer when the producer tries again
                await #expect(throws: BrokerError.invalidTransaction("topic orders was deleted after transaction \(before) began: its message is discarded")) {
                    try await tx.end(transactionId: before, messageId: "ID-B", topic: "orders", resolution: .commit, fromCheck: false, broker: broker)
                }
            }
            try await tx.end(transactionId: after, messageId: "ID-A", topic: "orders", resolution: .commit, fromCheck: false, broker: broker)
            #expect(try visible(broker).map { String(decoding: $0.body, as: UTF8.self) } == ["after"])
            #expect(tx.openCount == 0)
            // A rollback of one begun before the deletion is answered as any rollback, repeated too.
            try broker.upsertTopic(TopicConfig(name: "audit", queueCount: 2, messageTypes: ["TRANSACTION"]))
            let rolled = try await tx.prepare(half("rolled", id: "ID-R", topic: "audit"), firstCheck: .seconds(60), producerGave: false, broker: broker)
            try broker.deleteTopic("audit")
            for _ in 0..<2 {
                try await tx.end(transactionId: rolled, messageId: "ID-R", topic: "audit", resolution: .rollback, fromCheck: false, broker: broker)
            }
        }
    }

    @Test("retention keeps the segment of an open half message however old it is, so its commit still finds it")
    func retentionKeepsOpenHalfMessages() async throws {
        try await withBroker(smallSegments) { broker in
            let tx = broker.transactions
            let filler = String(repeating: "x", count: 900)
            for i in 0..<8 { try await send(broker, topic: "orders", body: filler + "\(i)") }
            let id = try await tx.prepare(half("open", id: "ID-O"), firstCheck: .seconds(600), producerGave: false, broker: broker)
            for i in 0..<8 { try await send(broker, topic: "orders", body: filler + "\(i)") }
            tx.saveMark()
            let halfAt = try #require(MessageID.physicalOffset(of: id))
            try ageSegments(broker)
            let holder = try #require(broker.store.commitLog.segmentList.first { $0.end > halfAt })
            #expect(holder.start > 0)
            #expect(broker.store.runRetention(force: true) > 0, "the segments before the half message's go")
            #expect(broker.store.commitLogMinOffset == holder.start)
            try await tx.end(transactionId: id, messageId: "ID-O", topic: "orders", resolution: .commit, fromCheck: false, broker: broker)
            #expect(try visible(broker).map { String(decoding: $0.body, as: UTF8.self) } == ["open"])
            tx.saveMark()
            #expect(TransactionService.oldestRecordNeeded(in: broker.store) == nil, "resolved: nothing is needed any more")
        }
    }

    @Test("a transaction id must name a half message of that message id and topic")
    func rejectsMismatches() async throws {
        try await withBroker { broker in
            let tx = broker.transactions
            let id = try await tx.prepare(half("a", id: "ID-A"), firstCheck: .seconds(60), producerGave: false, broker: broker)
            for (transaction, message, topic) in [("nonsense", "ID-A", "orders"), (id, "ID-X", "orders"), (id, "ID-A", "other")] {
                await #expect(throws: BrokerError.self) {
                    try await tx.end(transactionId: transaction, messageId: message, topic: topic, resolution: .commit, fromCheck: false, broker: broker)
                }
            }
            // A normal message's offset id is not a transaction id either.
            let normal = try await broker.append(MessageToAppend(topic: "orders", queueId: 0, body: [1], properties: [MessageProperty.uniqueKey: "N"]))
            await #expect(throws: BrokerError.self) {
                try await tx.end(transactionId: normal.msgId, messageId: "N", topic: "orders", resolution: .commit, fromCheck: false, broker: broker)
            }
            #expect(tx.openCount == 1)
        }
    }

    @Test("check-backs come when due, only with a producer to ask, and a transaction never answered is discarded")
    func checkBacks() async throws {
        try await withBroker { broker in
            let tx = broker.transactions
            _ = try await tx.prepare(half("a", id: "ID-A"), firstCheck: .seconds(5), producerGave: true, broker: broker)
            let now = Date()
            #expect(await tx.due(now: now, interval: .seconds(1), maxChecks: 2, canCheck: { _ in true }).isEmpty, "not due yet")
            let later = now + 6
            #expect(await tx.due(now: later, interval: .seconds(1), maxChecks: 2, canCheck: { _ in false }).isEmpty, "no producer to ask")
            let first = await tx.due(now: later + 1, interval: .seconds(1), maxChecks: 2, canCheck: { _ in true })
            #expect(first.map(\.message.topic) == ["orders"])
            #expect(first.first?.message.topic == "orders")
            #expect(first.first?.message.queueId == 1)
            #expect(first.first.map { String(decoding: $0.message.body, as: UTF8.self) } == "a")
            #expect(await tx.due(now: later + 1.5, interval: .seconds(1), maxChecks: 2, canCheck: { _ in true }).isEmpty, "checked again only after the interval")
            #expect(await tx.due(now: later + 2, interval: .seconds(1), maxChecks: 2, canCheck: { _ in true }).count == 1)
            // Two checks, no answer: the third time it is discarded.
            #expect(await tx.due(now: later + 3, interval: .seconds(1), maxChecks: 2, canCheck: { _ in true }).isEmpty)
            #expect(tx.openCount == 0)
            #expect(try visible(broker).isEmpty)
        }
    }

    @Test("a transaction no producer came to check is discarded once its half message is older than the retention")
    func abandonedTransactionsAreDiscarded() async throws {
        try await withBroker { broker in
            let tx = broker.transactions
            let id = try await tx.prepare(half("a", id: "ID-A"), firstCheck: .seconds(5), producerGave: true, broker: broker)
            let day: Duration = .seconds(86_400)
            let noProducer: (String) -> Bool = { _ in false }
            #expect(await tx.due(now: Date() + 3600, interval: .seconds(60), maxChecks: 2, maxAge: day, canCheck: noProducer).isEmpty)
            #expect(tx.openCount == 1, "waits for a producer while younger than the retention")
            #expect(await tx.due(now: Date() + 86_400 + 60, interval: .seconds(60), maxChecks: 2, maxAge: day, canCheck: noProducer).isEmpty)
            #expect(tx.openCount == 0, "discarded: its producers are gone")
            // Rolled back for good: a late commit is refused and nothing reaches the queue.
            await #expect(throws: BrokerError.self) {
                try await tx.end(transactionId: id, messageId: "ID-A", topic: "orders", resolution: .commit, fromCheck: false, broker: broker)
            }
            #expect(try visible(broker).isEmpty)
            tx.saveMark()
            #expect(TransactionService.oldestRecordNeeded(in: broker.store) == nil)
        }
    }

    @Test("the check and mark heaps shed the keys of resolved transactions while an old one stays open")
    func heapsStayBounded() async throws {
        try await withBroker { broker in
            let tx = broker.transactions
            _ = try await tx.prepare(half("old", id: "ID-OLD"), firstCheck: .seconds(600), producerGave: false, broker: broker)
            for i in 0..<3000 {
                let id = try await tx.prepare(half("\(i)", id: "ID-\(i)"), firstCheck: .seconds(600), producerGave: false, broker: broker)
                try await tx.end(transactionId: id, messageId: "ID-\(i)", topic: "orders", resolution: .rollback, fromCheck: false, broker: broker)
            }
            #expect(tx.heapCounts.mark > 3000 && tx.heapCounts.check > 3000, "stale keys wait behind the old one")
            tx.saveMark()
            _ = await tx.due(now: Date(), interval: .seconds(60), maxChecks: 15, canCheck: { _ in true })
            #expect(tx.heapCounts.mark <= 1025 && tx.heapCounts.check <= 1025, "\(tx.heapCounts)")
            #expect(tx.openCount == 1)
            // The mark still names the old one.
            #expect(TransactionService.oldestRecordNeeded(in: broker.store) != nil)
        }
    }

    @Test("a check is handed out once per call however short the interval; an absurd recovery time traps nothing")
    func checkEdges() async throws {
        try await withBroker { broker in
            let tx = broker.transactions
            _ = try await tx.prepare(half("a", id: "ID-A"), firstCheck: .zero, producerGave: true, broker: broker)
            let checks = await tx.due(now: Date() + 1, interval: .zero, maxChecks: 5, canCheck: { _ in true })
            #expect(checks.count == 1)
            #expect(tx.openCount == 1)
            // Beyond what a millisecond count can hold (a producer's duration, read back at a start).
            _ = try await tx.prepare(half("b", id: "ID-B"), firstCheck: .seconds(9_223_373_000_000_000), producerGave: false, broker: broker)
            #expect(TransactionService.milliseconds(Date(timeIntervalSince1970: 1e17)) == .max)
            #expect(await tx.due(now: Date() + 2, interval: .seconds(1), maxChecks: 5, canCheck: { _ in true }).count == 1)
            tx.saveMark()
            #expect(tx.openCount == 2)
        }
    }

    @Test("open transactions survive a restart; resolved ones stay resolved")
    func restart() async throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "broker-tx-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let configuration = testConfiguration(directory)
        let before = try Broker(configuration: configuration)
        let open = try await before.transactions.prepare(half("open", id: "ID-O"), firstCheck: .seconds(60), producerGave: false, broker: before)
        let done = try await before.transactions.prepare(half("done", id: "ID-D"), firstCheck: .seconds(60), producerGave: false, broker: before)
        try await before.transactions.end(transactionId: done, messageId: "ID-D", topic: "orders", resolution: .commit, fromCheck: false, broker: before)
        before.store.shutdown()  // as after a crash: no snapshot of anything

        let after = try Broker(configuration: configuration)
        #expect(after.transactions.openCount == 1)
        // A producer repeating the commit it made before the crash (its answer lost) is told it
        // is done, and nothing is appended twice; the opposite answer is refused as before.
        try await after.transactions.end(transactionId: done, messageId: "ID-D", topic: "orders", resolution: .commit, fromCheck: false, broker: after)
        await #expect(throws: BrokerError.invalidTransaction("transaction \(done) was already resolved as COMMIT")) {
            try await after.transactions.end(transactionId: done, messageId: "ID-D", topic: "orders", resolution: .rollback, fromCheck: false, broker: after)
        }
        // Recovered transactions are due at once: their producer may be gone.
        let due = await after.transactions.due(now: Date() + 1, interval: .seconds(60), maxChecks: 15, canCheck: { _ in true })
        #expect(due.map(\.transactionId) == [open])
        try await after.transactions.end(transactionId: open, messageId: "ID-O", topic: "orders", resolution: .commit, fromCheck: true, broker: after)
        #expect(try visible(after).map { String(decoding: $0.body, as: UTF8.self) } == ["done", "open"])
        after.transactions.saveMark()
        await after.shutdown()

        // The mark is saved past both resolutions: the latest ones are read back all the same.
        let again = try Broker(configuration: configuration)
        #expect(again.transactions.openCount == 0)
        for (id, message) in [(done, "ID-D"), (open, "ID-O")] {
            try await again.transactions.end(transactionId: id, messageId: message, topic: "orders", resolution: .commit, fromCheck: false, broker: again)
        }
        #expect(try visible(again).count == 2)
        await again.shutdown()
    }

    @Test("a transaction resolved before a restart stays resolved over the next ones while an older one stays open")
    func resolvedStaysResolvedOverTwoRestarts() async throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "broker-tx2-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let configuration = testConfiguration(directory)
        var broker = try Broker(configuration: configuration)
        _ = try await broker.transactions.prepare(half("old", id: "ID-OLD"), firstCheck: .seconds(600), producerGave: false, broker: broker)
        let newer = try await broker.transactions.prepare(half("newer", id: "ID-NEW"), firstCheck: .seconds(600), producerGave: false, broker: broker)
        try await broker.transactions.end(transactionId: newer, messageId: "ID-NEW", topic: "orders", resolution: .commit, fromCheck: false, broker: broker)
        broker.transactions.saveMark()
        await broker.shutdown()
        // Each restart reads back from the mark, and saves it again.
        for _ in 0..<2 {
            broker = try Broker(configuration: configuration)
            #expect(broker.transactions.openCount == 1, "the transaction committed before the restarts is open again")
            broker.transactions.saveMark()
            await broker.shutdown()
        }
    }

    @Test("the saved mark starts the next scan at the oldest undecided half message, never past one")
    func markBoundsTheScan() async throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "broker-txmark-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let configuration = testConfiguration(directory)
        let markPath = directory + "/config/transactions.json"
        func mark() throws -> TransactionService.Mark {
            try JSONDecoder().decode(TransactionService.Mark.self, from: Data(contentsOf: URL(fileURLWithPath: markPath)))
        }
        let broker = try Broker(configuration: configuration)
        let tx = broker.transactions
        let first = try await tx.prepare(half("1", id: "ID-1"), firstCheck: .seconds(60), producerGave: false, broker: broker)
        _ = try await tx.prepare(half("2", id: "ID-2"), firstCheck: .seconds(60), producerGave: false, broker: broker)
        tx.saveMark()
        #expect(try mark() == .init(halfFrom: 0, opsFrom: 0))
        try await tx.end(transactionId: first, messageId: "ID-1", topic: "orders", resolution: .commit, fromCheck: false, broker: broker)
        tx.saveMark()
        #expect(try mark() == .init(halfFrom: 1, opsFrom: 0), "half 1 is still open; its op record would come after op offset 0")
        _ = try await tx.prepare(half("3", id: "ID-3"), firstCheck: .seconds(60), producerGave: false, broker: broker)
        broker.store.shutdown()

        // The restart reads from the mark and finds both open ones.
        let again = try Broker(configuration: configuration)
        #expect(again.transactions.openCount == 2)
        let due = await again.transactions.due(now: Date() + 1, interval: .seconds(60), maxChecks: 15, canCheck: { _ in true })
        #expect(Set(due.map { String(decoding: $0.message.body, as: UTF8.self) }) == ["2", "3"])
        for check in due {
            try await again.transactions.end(
                transactionId: check.transactionId, messageId: check.message.messageId, topic: "orders", resolution: .rollback,
                fromCheck: true, broker: again)
        }
        again.transactions.saveMark()
        #expect(try mark() == .init(halfFrom: 3, opsFrom: 3), "nothing open: both queues' ends")
        // A half message below the mark is never read again: one without an op record, planted
        // below a mark moved past it, stays unseen (the mark is trusted, which is why it never
        // passes an undecided one).
        _ = try await again.transactions.prepare(half("4", id: "ID-4"), firstCheck: .seconds(60), producerGave: false, broker: again)
        try AtomicFile.write(Array(#"{"halfFrom": 4, "opsFrom": 3}"#.utf8), to: markPath)
        again.store.shutdown()
        let third = try Broker(configuration: configuration)
        #expect(third.transactions.openCount == 0)
        await third.shutdown()
    }
}
