import Foundation
@testable import RocketMQBroker
import RocketMQClient
import RocketMQStore
import Testing

@Suite struct LongPollingTests {
    /// Arrivals that come while a woken receiver has not begun its scan wake nobody else; when
    /// that scan fills its batch, the next waiting receiver must take the rest at once rather
    /// than at the end of its long poll.
    @Test func aReceiveThatFillsItsBatchWakesTheGroupsNextWaitingReceiver() async throws {
        let inProcess = try await InProcessBroker.start()
        let configuration = try ClientConfiguration(endpoints: inProcess.endpoint)
        let (topic, group) = (unique("handon"), unique("g"))
        let producer = try await Producer.start(configuration: configuration, topics: [topic])
        let consumer = try await SimpleConsumer.start(
            configuration: configuration, group: group, subscriptions: [topic: .all], awaitDuration: .seconds(20))
        async let first = consumer.receive(maxMessages: 1, invisibleDuration: .seconds(30))
        async let second = consumer.receive(maxMessages: 1, invisibleDuration: .seconds(30))
        let arrivals = inProcess.broker.arrivals
        for _ in 0..<500 where arrivals.waiterCount(topic) < 2 { try await Task.sleep(for: .milliseconds(5)) }
        #expect(arrivals.waiterCount(topic) == 2)
        // Two messages announced by one arrival, as when arrivals coalesce.
        for body in ["m0", "m1"] {
            _ = try await inProcess.broker.store.append(MessageToAppend(topic: topic, queueId: 0, body: Array(body.utf8)))
        }
        let clock = ContinuousClock()
        let signalled = clock.now
        arrivals.signal(topic, queueId: 0)
        let received = try await first + second
        let waited = clock.now - signalled
        await consumer.shutdown()
        await producer.shutdown()
        await inProcess.stop()
        #expect(received.map(\.text).sorted() == ["m0", "m1"])
        #expect(waited < .seconds(5), "the second receiver waited \(waited) for a message already stored")
    }

    /// A receive whose caller went away while it waited must not take messages on its way out:
    /// they would go to a dead stream and stay invisible for their invisible duration.
    @Test func aCancelledWaitingReceiveTakesNoMessage() async throws {
        let inProcess = try await InProcessBroker.start()
        let configuration = try ClientConfiguration(endpoints: inProcess.endpoint)
        let (topic, group) = (unique("cancel"), unique("g"))
        let producer = try await Producer.start(configuration: configuration, topics: [topic])
        let consumer = try await SimpleConsumer.start(
            configuration: configuration, group: group, subscriptions: [topic: .all], awaitDuration: .seconds(20))
        let waiting = Task { try await consumer.receive(maxMessages: 1, invisibleDuration: .seconds(60)) }
        let arrivals = inProcess.broker.arrivals
        for _ in 0..<500 where arrivals.waiterCount(topic) < 1 { try await Task.sleep(for: .milliseconds(5)) }
        #expect(arrivals.waiterCount(topic) == 1)
        // Stored without waking anyone: the waiting receive would find it if it scanned again.
        _ = try await inProcess.broker.store.append(MessageToAppend(topic: topic, queueId: 0, body: Array("m".utf8)))
        waiting.cancel()
        _ = try? await waiting.value
        for _ in 0..<500 where arrivals.waiterCount(topic) > 0 { try await Task.sleep(for: .milliseconds(5)) }
        let clock = ContinuousClock()
        let started = clock.now
        var received: [ReceivedMessage] = []
        while received.isEmpty, clock.now - started < .seconds(5) {
            received = try await consumer.receive(maxMessages: 1, invisibleDuration: .seconds(60))
        }
        await consumer.shutdown()
        await producer.shutdown()
        await inProcess.stop()
        #expect(received.map(\.text) == ["m"], "the message went to the cancelled receive")
    }
}
