import Foundation
import RocketMQClient
import Testing

@Suite("Transactional messages through the Swift client and a real broker", .serialized)
struct TransactionTests {
    /// A broker that checks open transactions back after `checkMillis`, then every `checkMillis`.
    static func config(topic: String, checkMillis: Int = 1000) -> String {
        """
        {"topics": [{"name": "\(topic)", "queueCount": 2, "permission": 6, "messageTypes": ["TRANSACTION"]}],
         "settings": {"transactionTimeoutMillis": "\(checkMillis)", "transactionCheckIntervalMillis": "\(checkMillis)"}}
        """
    }

    /// A producer of `topic` whose checker records what it was asked and answers with `answer`,
    /// and a consumer of the topic.
    static func clients(
        _ configuration: ClientConfiguration, topic: String, asked: Collector<String>,
        answer: @escaping @Sendable (ReceivedMessage) -> TransactionResolution
    ) async throws -> (Producer, SimpleConsumer) {
        let producer = try await Producer.start(
            configuration: configuration, topics: [topic],
            options: ProducerOptions(transactionChecker: { message in
                asked.append(message.text)
                return answer(message)
            }))
        let consumer = try await SimpleConsumer.start(
            configuration: configuration, group: unique("tx-group"), subscriptions: [topic: .all], awaitDuration: .milliseconds(500))
        return (producer, consumer)
    }

    @Test("commit delivers, rollback never does, and both end the transaction")
    func commitAndRollback() async throws {
        let topic = unique("tx")
        try await withDevBroker(config: Self.config(topic: topic)) { _, configuration in
            let asked = Collector<String>()
            // Not decided yet: the transactions stay open.
            let (producer, consumer) = try await Self.clients(configuration, topic: topic, asked: asked) { _ in .unknown }

            let kept = try producer.beginTransaction()
            let receipt = try await kept.send(Message(topic: topic, body: Array("kept".utf8), properties: ["order": "7"]))
            #expect(receipt.transactionId?.isEmpty == false)
            let dropped = try producer.beginTransaction()
            _ = try await dropped.send(Message(topic: topic, body: Array("dropped".utf8)))

            // Nothing is delivered while both are open (past the first check-back, answered "unknown").
            let early = try await receiveAll(consumer, count: 1, timeout: .milliseconds(2500))
            #expect(early.isEmpty, "half messages were delivered: \(early.map(\.text))")
            #expect(await eventually(timeout: .seconds(5)) { asked.count >= 2 }, "the open transactions were checked back")

            try await dropped.rollback()
            try await kept.commit()
            let delivered = try await receiveAll(consumer, count: 1, timeout: .seconds(10))
            #expect(delivered.map(\.text) == ["kept"])
            #expect(delivered.first?.messageId == receipt.messageId)
            #expect(delivered.first?.properties["order"] == "7")
            let later = try await receiveAll(consumer, count: 1, timeout: .seconds(2))
            #expect(later.isEmpty, "the rolled-back message was delivered: \(later.map(\.text))")

            await #expect(throws: RocketMQError.self) { try await kept.commit() }
            await consumer.shutdown()
            await producer.shutdown()
        }
    }

    @Test("a transaction left open is committed by the checker of the producer the broker asks")
    func checkBackCommits() async throws {
        let topic = unique("tx-check")
        try await withDevBroker(config: Self.config(topic: topic)) { _, configuration in
            let asked = Collector<String>()
            let (producer, consumer) = try await Self.clients(configuration, topic: topic, asked: asked) { message in
                message.properties["decision"] == "commit" ? .commit : .rollback
            }
            _ = try await producer.beginTransaction().send(Message(topic: topic, body: Array("yes".utf8), properties: ["decision": "commit"]))
            _ = try await producer.beginTransaction().send(Message(topic: topic, body: Array("no".utf8), properties: ["decision": "rollback"]))
            let delivered = try await receiveAll(consumer, count: 1, timeout: .seconds(15))
            #expect(delivered.map(\.text) == ["yes"])
            #expect(await eventually(timeout: .seconds(5)) { asked.count == 2 })
            let later = try await receiveAll(consumer, count: 1, timeout: .seconds(2.5))
            #expect(later.isEmpty)
            #expect(Set(asked.all) == ["yes", "no"], "each asked once: \(asked.all)")
            await consumer.shutdown()
            await producer.shutdown()
        }
    }

    @Test("a producer that did not list the topic is still asked about its transactions there")
    func checkBackWithoutListedTopic() async throws {
        let topic = unique("tx-unlisted")
        try await withDevBroker(config: Self.config(topic: topic)) { _, configuration in
            let asked = Collector<String>()
            // No `topics`: the producer's settings name none.
            let producer = try await Producer.start(
                configuration: configuration,
                options: ProducerOptions(transactionChecker: { message in
                    asked.append(message.text)
                    return .commit
                }))
            let consumer = try await SimpleConsumer.start(
                configuration: configuration, group: unique("tx-group"), subscriptions: [topic: .all], awaitDuration: .milliseconds(500))
            _ = try await producer.beginTransaction().send(Message(topic: topic, body: Array("left open".utf8)))
            let delivered = try await receiveAll(consumer, count: 1, timeout: .seconds(15))
            #expect(delivered.map(\.text) == ["left open"])
            #expect(asked.all == ["left open"])
            await consumer.shutdown()
            await producer.shutdown()
        }
    }

    @Test("a commit that failed can be tried again, and only the same way")
    func aFailedCommitCanBeRetried() async throws {
        let topic = unique("tx-retry")
        // No check-back within the test: the second commit must be what delivers the message.
        try await withDevBroker(config: Self.config(topic: topic, checkMillis: 600_000)) { broker, configuration in
            var configuration = configuration
            configuration.requestTimeout = .milliseconds(500)
            let asked = Collector<String>()
            let (producer, consumer) = try await Self.clients(configuration, topic: topic, asked: asked) { _ in .unknown }
            let transaction = try producer.beginTransaction()
            _ = try await transaction.send(Message(topic: topic, body: Array("paid".utf8)))

            broker.pause()
            await #expect(throws: RocketMQError.self) { try await transaction.commit() }
            broker.resume()
            // Part-way through a commit, it cannot be rolled back, nor take more messages.
            await #expect(throws: RocketMQError.invalidArgument("the transaction is part-way through its commit; end it that way again")) {
                try await transaction.rollback()
            }
            await #expect(throws: RocketMQError.self) { _ = try await transaction.send(Message(topic: topic, body: Array("late".utf8))) }
            try await transaction.commit()
            let delivered = try await receiveAll(consumer, count: 1, timeout: .seconds(10))
            #expect(delivered.map(\.text) == ["paid"])
            await #expect(throws: RocketMQError.self) { try await transaction.commit() }
            #expect(asked.all.isEmpty)
            await consumer.shutdown()
            await producer.shutdown()
        }
    }

    @Test("a commit the broker answers as final, after a check-back rolled it back, ends the transaction")
    func aFinalAnswerEndsTheTransaction() async throws {
        let topic = unique("tx-final")
        let directory = try TemporaryDirectory("tx-final")
        defer { directory.remove() }
        let config = try directory.write("broker.json", Self.config(topic: topic))
        let first = try ServerProcess.devBroker(data: directory.file("data"), config: config)
        defer { first.stop() }
        var configuration = try ClientConfiguration(endpoints: first.endpoint)
        configuration.requestTimeout = .milliseconds(500)
        let asked = Collector<String>()
        let (producer, consumer) = try await Self.clients(configuration, topic: topic, asked: asked) { _ in .rollback }
        let transaction = try producer.beginTransaction()
        _ = try await transaction.send(Message(topic: topic, body: Array("refunded".utf8)))

        // The commit never reaches the broker; after its restart, a check-back rolls it back.
        first.kill()
        await #expect(throws: RocketMQError.self) { try await transaction.commit() }
        let second = try ServerProcess.devBroker(data: directory.file("data"), port: first.port, config: config)
        defer { second.stop() }
        #expect(await eventually(timeout: .seconds(30)) { asked.count >= 1 }, "the open transaction was never checked back")
        try await Task.sleep(for: .seconds(2))  // room for the checker's rollback to land
        var answer: RocketMQError?
        for _ in 0..<50 {
            do throws(RocketMQError) {
                try await transaction.commit()
                answer = nil
                break
            } catch {
                answer = error
                if case .status = error { break }  // the broker answered (not a reconnect still under way)
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        guard case .status(let code, let why)? = answer else {
            Issue.record("the retried commit got \(answer.map { "\($0)" } ?? "success") instead of the broker's refusal")
            await consumer.shutdown(); await producer.shutdown()
            return
        }
        // Found across the restart (which moved the broker from port 0's store host to a real
        // port): the broker knows it, and says how it ended.
        #expect(code == .invalidTransactionId)
        #expect(why.contains("already resolved as ROLLBACK"), "\(why)")
        // That answer is final: the transaction is over, not stuck retrying it.
        await #expect(throws: RocketMQError.invalidArgument("the transaction has already ended (commit)")) { try await transaction.commit() }
        let delivered = try await receiveAll(consumer, count: 1, timeout: .seconds(2))
        #expect(delivered.isEmpty, "the rolled-back message was delivered")
        await consumer.shutdown()
        await producer.shutdown()
    }

    @Test("a producer without a checker cannot begin a transaction")
    func needsChecker() async throws {
        let topic = unique("tx-none")
        try await withDevBroker(config: Self.config(topic: topic)) { _, configuration in
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            #expect(throws: RocketMQError.self) { _ = try producer.beginTransaction() }
            await producer.shutdown()
        }
    }
}
