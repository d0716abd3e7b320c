import Foundation
@testable import RocketMQBroker
import RocketMQClient
import RocketMQStore
import Testing

@Suite struct LongPollingTests {
    /// An in-process broker, a producer that creates `topic`, and a consumer of it whose
    /// receives long-poll for 20 s; all stopped afterwards.
    private func withLongPollingConsumer(
        _ prefix: String, _ body: (InProcessBroker, String, SimpleConsumer) async throws -> Void
    ) async throws {
        let inProcess = try await InProcessBroker.start()
        let configuration = try ClientConfiguration(endpoints: inProcess.endpoint)
        let topic = unique(prefix)
        let producer = try await Producer.start(configuration: configuration, topics: [topic])
        let consumer = try await SimpleConsumer.start(
            configuration: configuration, group: unique("g"), subscriptions: [topic: .all], awaitDuration: .seconds(20))
        do {
            try await body(inProcess, topic, consumer)
        } catch {
            await consumer.shutdown()
            await producer.shutdown()
            await inProcess.stop()
            throw error
        }
        await consumer.shutdown()
        await producer.shutdown()
        await inProcess.stop()
    }

    /// Waits (bounded) until `count` receives wait on `topic`.
    private func untilWaiting(_ count: Int, on topic: String, in inProcess: InProcessBroker) async throws {
        let arrivals = inProcess.broker.arrivals
        for _ in 0..<500 where arrivals.waiterCount(topic) != count { try await Task.sleep(for: .milliseconds(5)) }
        #expect(arrivals.waiterCount(topic) == count)
    }

    /// Stores `body` on queue 0 of `topic` without waking any receiver.
    private func storeUnannounced(_ body: String, on topic: String, in inProcess: InProcessBroker) async throws {
        _ = try await inProcess.broker.store.append(MessageToAppend(topic: topic, queueId: 0, body: Array(body.utf8)))
    }

    /// Arrivals that come while a woken receiver has not begun its scan wake nobody else; when
    /// that scan fills its batch, the next waiting receiver must take the rest at once rather
    /// than at the end of its long poll.
    @Test func aReceiveThatFillsItsBatchWakesTheGroupsNextWaitingReceiver() async throws {
        try await withLongPollingConsumer("handon") { inProcess, topic, consumer in
            async let first = consumer.receive(maxMessages: 1, invisibleDuration: .seconds(30))
            async let second = consumer.receive(maxMessages: 1, invisibleDuration: .seconds(30))
            try await untilWaiting(2, on: topic, in: inProcess)
            // Two messages announced by one arrival, as when arrivals coalesce.
            for body in ["m0", "m1"] { try await storeUnannounced(body, on: topic, in: inProcess) }
            let clock = ContinuousClock()
            let signalled = clock.now
            inProcess.broker.arrivals.signal(topic, queueId: 0)
            let received = try await first + second
            let waited = clock.now - signalled
            #expect(received.map(\.text).sorted() == ["m0", "m1"])
            #expect(waited < .seconds(5), "the second receiver waited \(waited) for a message already stored")
        }
    }

    /// A receive whose caller went away while it waited must not take messages on its way out:
    /// they would go to a dead stream and stay invisible for their invisible duration.
    @Test func aCancelledWaitingReceiveTakesNoMessage() async throws {
        try await withLongPollingConsumer("cancel") { inProcess, topic, consumer in
            let waiting = Task { try await consumer.receive(maxMessages: 1, invisibleDuration: .seconds(60)) }
            try await untilWaiting(1, on: topic, in: inProcess)
            // Stored without waking anyone: the waiting receive would find it if it scanned again.
            try await storeUnannounced("m", on: topic, in: inProcess)
            waiting.cancel()
            _ = try? await waiting.value
            try await untilWaiting(0, on: topic, in: inProcess)
            let clock = ContinuousClock()
            let started = clock.now
            var received: [ReceivedMessage] = []
            while received.isEmpty, clock.now - started < .seconds(5) {
                received = try await consumer.receive(maxMessages: 1, invisibleDuration: .seconds(60))
            }
            #expect(received.map(\.text) == ["m"], "the message went to the cancelled receive")
        }
    }

    /// A receive reads at most `filterScanBudget` messages a SQL92 filter refuses per queue. Past
    /// that, the long poll must read on, not wait for an arrival that will never announce the
    /// match. (Tag filters pass over refused messages by ConsumeQueue hash, far more per read.)
    @Test func aSelectiveFilterFindsItsMatchBehindMoreRefusedMessagesThanOneReceiveReads() async throws {
        let inProcess = try await InProcessBroker.start()
        let configuration = try ClientConfiguration(endpoints: inProcess.endpoint)
        let topic = unique("budget")
        try inProcess.broker.upsertTopic(TopicConfig(name: topic, queueCount: 1))
        let consumer = try await SimpleConsumer.start(
            configuration: configuration, group: unique("g"), subscriptions: [topic: .sql92("wanted = 'yes'")], awaitDuration: .seconds(20))
        do {
            let refused = 2 * ConsumptionEngine.filterScanBudget + 10
            for index in 0..<refused {
                _ = try await inProcess.broker.store.append(MessageToAppend(
                    topic: topic, queueId: 0, body: Array("r\(index)".utf8), properties: ["wanted": "no"]))
            }
            _ = try await inProcess.broker.store.append(MessageToAppend(
                topic: topic, queueId: 0, body: Array("m".utf8), properties: ["wanted": "yes"]))
            let clock = ContinuousClock()
            let started = clock.now
            let received = try await consumer.receive(maxMessages: 1, invisibleDuration: .seconds(30))
            let waited = clock.now - started
            #expect(received.map(\.text) == ["m"])
            #expect(waited < .seconds(10), "the receive waited \(waited) behind \(refused) refused messages")
        } catch {
            await consumer.shutdown()
            await inProcess.stop()
            throw error
        }
        await consumer.shutdown()
        await inProcess.stop()
    }
}
