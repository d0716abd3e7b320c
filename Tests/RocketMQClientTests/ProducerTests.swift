import Foundation
import RocketMQClient
import Testing

@Suite struct ProducerTests {
    @Test func everySendModeDeliversBodiesTagsKeysAndProperties() async throws {
        try await withDevBroker { _, configuration in
            let topic = unique("modes")
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            func message(_ body: String) -> Message {
                Message(topic: topic, body: Array(body.utf8), tag: "t", keys: ["k-\(body)"], properties: ["mode": body])
            }
            let receipt = try await producer.send(message("sync"))
            #expect(!receipt.messageId.isEmpty)
            #expect(receipt.offset >= 0)

            let asyncResult = Collector<Result<SendReceipt, RocketMQError>>()
            let task = try producer.sendAsync(message("async")) { asyncResult.append($0) }
            await task.value
            #expect(asyncResult.count == 1)
            if case .failure(let error)? = asyncResult.all.first { Issue.record("async send failed: \(error)") }

            try producer.sendOneway(message("oneway"))
            let batch = try await producer.send([message("batch-1"), message("batch-2"), message("batch-3")])
            #expect(batch.count == 3)
            #expect(Set(batch.map(\.messageId)).count == 3)

            var large = message("large")
            large.body = Array(String(repeating: "compressible ", count: 2000).utf8)
            _ = try await producer.send(large)
            await producer.shutdown()  // drains the one-way send

            let consumer = try await SimpleConsumer.start(
                configuration: configuration, group: unique("g"), subscriptions: [topic: .all], awaitDuration: .seconds(1))
            let received = try await receiveAll(consumer, count: 7)
            await consumer.shutdown()
            #expect(received.count == 7)
            let byMode = Dictionary(received.map { ($0.properties["mode"] ?? "", $0) }, uniquingKeysWith: { first, _ in first })
            #expect(Set(byMode.keys) == ["sync", "async", "oneway", "batch-1", "batch-2", "batch-3", "large"])
            #expect(byMode["sync"]?.messageId == receipt.messageId)
            #expect(byMode["sync"]?.text == "sync")
            #expect(byMode["sync"]?.tag == "t")
            #expect(byMode["sync"]?.keys == ["k-sync"])
            #expect(byMode["large"]?.body == large.body, "a gzip-encoded body comes back decompressed")
        }
    }

    @Test func delayMessagesAreNotDeliveredBeforeTheirTimestamp() async throws {
        try await withDevBroker { _, configuration in
            let topic = unique("delay")
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            let due = Date().addingTimeInterval(2)
            _ = try await producer.send(Message(topic: topic, body: Array("later".utf8), deliveryTimestamp: due))
            await producer.shutdown()
            let consumer = try await SimpleConsumer.start(
                configuration: configuration, group: unique("g"), subscriptions: [topic: .all], awaitDuration: .milliseconds(500))
            let early = try await consumer.receive(maxMessages: 1, invisibleDuration: .seconds(10))
            // Setting up may itself outlast the 2 s on a loaded machine; what must never happen
            // is a delivery before the timestamp.
            let answered = Date()
            #expect(early.isEmpty || answered >= due.addingTimeInterval(-0.1), "delivered before its delivery timestamp")
            let received = early.isEmpty ? try await receiveAll(consumer, count: 1, timeout: .seconds(10)) : []
            await consumer.shutdown()
            #expect((early + received).map(\.text) == ["later"])
            #expect(Date() >= due.addingTimeInterval(-0.1))
        }
    }

    @Test func aDelayMessageRecalledBeforeItIsDueReachesNoConsumer() async throws {
        try await withDevBroker { _, configuration in
            let topic = unique("recall")
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            let due = Date().addingTimeInterval(3)
            let recalled = try await producer.send(Message(topic: topic, body: Array("recalled".utf8), deliveryTimestamp: due))
            let kept = try await producer.send(Message(topic: topic, body: Array("kept".utf8), deliveryTimestamp: due))
            let normal = try await producer.send(Message(topic: topic, body: Array("now".utf8)))
            #expect(normal.recallHandle == nil)
            // A delay beyond the 3 days a delay may last (a timestamp in the wrong unit) is refused.
            await #expect {
                _ = try await producer.send(Message(topic: topic, body: Array("never".utf8), deliveryTimestamp: Date().addingTimeInterval(4 * 86_400)))
            } throws: { error in
                guard case RocketMQError.status(let code, _) = error else { return false }
                return code == .illegalDeliveryTime
            }
            let handle = try #require(recalled.recallHandle)
            #expect(try await producer.recall(topic: topic, recallHandle: handle) == recalled.messageId)
            #expect(try await producer.recall(topic: topic, recallHandle: handle) == recalled.messageId)  // again: no error
            await #expect {
                _ = try await producer.recall(topic: topic, recallHandle: "recall1:nowhere")
            } throws: { error in
                guard case RocketMQError.status(let code, let message) = error else { return false }
                return code == .badRequest && message.contains("invalid recall handle")
            }
            await #expect {
                _ = try await producer.recall(topic: unique("other"), recallHandle: handle)
            } throws: { error in
                guard case RocketMQError.status(let code, _) = error else { return false }
                return code == .notFound || code == .topicNotFound
            }
            let consumer = try await SimpleConsumer.start(
                configuration: configuration, group: unique("g"), subscriptions: [topic: .all], awaitDuration: .milliseconds(500))
            let received = try await receiveAll(consumer, count: 2, timeout: .seconds(15))
            #expect(received.map(\.text).sorted() == ["kept", "now"])
            // The recalled message was due with the kept one: it never comes.
            let late = try await consumer.receive(maxMessages: 32, invisibleDuration: .seconds(10))
            #expect(late.isEmpty, "a recalled message was delivered: \(late.map(\.text))")
            // Due now: too late to recall the kept one.
            await #expect {
                _ = try await producer.recall(topic: topic, recallHandle: try #require(kept.recallHandle))
            } throws: { error in
                guard case RocketMQError.status(let code, let message) = error else { return false }
                return code == .notFound && message.contains("too late to recall")
            }
            await consumer.shutdown()
            await producer.shutdown()
        }
    }

    @Test func brokerRejectionsSurfaceAsTypedStatusErrors() async throws {
        try await withDevBroker { _, configuration in
            let topic = unique("reject")
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            defer { Task { await producer.shutdown() } }
            await #expect {
                _ = try await producer.send(Message(topic: topic, body: Array("x".utf8), properties: ["__reserved": "1"]))
            } throws: { error in
                guard case .status(let code, let message)? = error as? RocketMQError else { return false }
                return code == .illegalMessagePropertyKey && !message.isEmpty
            }
            await #expect(throws: RocketMQError.self) {
                _ = try await producer.send(Message(topic: topic, body: [1], messageGroup: "g", deliveryTimestamp: Date()))
            }
            await #expect(throws: RocketMQError.invalidArgument("the message has no topic")) {
                _ = try await producer.send(Message(topic: "", body: [1]))
            }
            // A delay message travels alone, as in RocketMQ: a batch could not be stored all or none.
            await #expect(throws: RocketMQError.invalidArgument("a delay message cannot be sent in a batch; send it alone")) {
                _ = try await producer.send([
                    Message(topic: topic, body: [1]), Message(topic: topic, body: [2], deliveryTimestamp: Date().addingTimeInterval(60)),
                ])
            }
        }
    }

    @Test func callsAfterShutdownFailWithShutDown() async throws {
        try await withDevBroker { _, configuration in
            let topic = unique("closed")
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            await producer.shutdown()
            await #expect(throws: RocketMQError.shutDown) {
                _ = try await producer.send(Message(topic: topic, body: [1]))
            }
        }
    }

    @Test func aSendStoredButNotReplicatedIsNotSentAgain() async throws {
        // A SYNC_MASTER with no slave stores each send, then answers HA_NOT_AVAILABLE.
        let directory = try TemporaryDirectory("sync-master")
        defer { directory.remove() }
        let broker = try ServerProcess.devBroker(data: directory.file("data"), extra: ["--role", "SYNC_MASTER"])
        defer { broker.stop() }
        let configuration = try ClientConfiguration(endpoints: broker.endpoint)
        let topic = unique("unreplicated")
        let producer = try await Producer.start(configuration: configuration, topics: [topic])
        var failure: RocketMQError?
        do {
            _ = try await producer.send(Message(topic: topic, body: Array("once".utf8)))
        } catch {
            failure = error
        }
        await producer.shutdown()
        #expect(failure?.isStoredButUnconfirmed == true, "\(String(describing: failure))")
        let consumer = try await SimpleConsumer.start(
            configuration: configuration, group: unique("g"), subscriptions: [topic: .all], awaitDuration: .milliseconds(500))
        let received = try await receiveAll(consumer, count: 3, timeout: .seconds(4))
        await consumer.shutdown()
        #expect(received.map(\.text) == ["once"], "the broker holds \(received.count) copies")
    }
}
