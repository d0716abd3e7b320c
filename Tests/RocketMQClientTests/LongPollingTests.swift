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
}
