import Foundation
@testable import RocketMQBroker
import RocketMQStore
import Testing

@Suite("Message trace from stored copies and the consumer-progress journal")
struct MessageTraceTests {
    /// Receives until something comes (bounded), for deliveries that wait on an invisible duration.
    private func receiveSoon(_ broker: Broker, _ group: GroupConfig, topic: String = "t", invisible: Duration, filter: MessageFilter = .all) async throws -> [Delivery] {
        for _ in 0..<100 {
            let got = try await broker.consumption.receive(group: group, topic: topic, queueIds: [0], batchSize: 1, invisibleDuration: invisible, filter: filter)
            if !got.isEmpty { return got }
            try await Task.sleep(for: .milliseconds(20))
        }
        return []
    }

    private func kinds(_ trace: MessageTrace) -> [String] {
        trace.events.map { event in
            let who = event.group.map { " \($0)" } ?? " \(event.topic)"
            return "\(event.kind)\(who)" + (event.kind == .delivered ? " #\(event.attempt)" : "")
        }
    }

    @Test("deliveries with their attempts, the ack and an offset reset, in order; a filter's pass leaves nothing")
    func deliveriesAcksFiltersAndResets() async throws {
        try await withBroker { broker in
            try await send(broker, topic: "t", body: "order", tag: "a", properties: [MessageProperty.uniqueKey: "ID-1"])
            try await send(broker, topic: "t", body: "other", tag: "a", properties: [MessageProperty.uniqueKey: "ID-2"])
            let g = GroupConfig(name: "g", maxDeliveryAttempts: 5)
            // Delivered, not acked in time, delivered again, acked.
            let first = try await receiveSoon(broker, g, invisible: .milliseconds(50))
            #expect(first.map(\.text) == ["order"])
            try await Task.sleep(for: .milliseconds(80))
            let second = try await receiveSoon(broker, g, invisible: .seconds(30))
            #expect(second.map(\.attempt) == [2])
            try await broker.consumption.ack(group: "g", topic: "t", handle: second[0].handle)
            // A group whose filter does not take tag a passes over it: not journaled, no event.
            let h = GroupConfig(name: "h", maxDeliveryAttempts: 5)
            #expect(try await broker.consumption.receive(
                group: h, topic: "t", queueIds: [0], batchSize: 4, invisibleDuration: .seconds(30), filter: .tags(TagFilter(tags: ["b"]))).isEmpty)
            // g is reset to the start: it will get the message again.
            try await broker.consumption.setConsumerOffset(group: "g", topic: "t", queueId: 0, offset: 0)

            let trace = try #require(try broker.trace(messageId: "ID-1"))
            #expect(trace.copies.map(\.topic) == ["t"])
            #expect(kinds(trace) == ["stored t", "delivered g #1", "delivered g #2", "acked g", "offsetReset g"])
            #expect(trace.events.allSatisfy { $0.queueOffset == 0 }, "events of message ID-2 (offset 1) are not this message's")
            #expect(zip(trace.events, trace.events.dropFirst()).allSatisfy { $0.time <= $1.time })
            #expect(!trace.truncated)

            // By offset id too; an unknown id has no trace.
            #expect(try broker.trace(messageId: trace.copies[0].msgId)?.events.count == trace.events.count)
            #expect(try broker.trace(messageId: "NO-SUCH-ID") == nil)
        }
    }

    @Test("a pull consumer's commit past a message, then a reset before it")
    func offsetCommits() async throws {
        try await withBroker { broker in
            try await send(broker, topic: "t", body: "a", properties: [MessageProperty.uniqueKey: "ID-A"])
            try await send(broker, topic: "t", body: "b", properties: [MessageProperty.uniqueKey: "ID-B"])
            try await broker.consumption.setConsumerOffset(group: "p", topic: "t", queueId: 0, offset: 1)  // past A only
            try await broker.consumption.setConsumerOffset(group: "p", topic: "t", queueId: 0, offset: 2)  // past B; A already
            try await broker.consumption.setConsumerOffset(group: "p", topic: "t", queueId: 0, offset: 0)  // back before both
            #expect(kinds(try #require(try broker.trace(messageId: "ID-A"))) == ["stored t", "offsetPassed p", "offsetReset p"])
            #expect(kinds(try #require(try broker.trace(messageId: "ID-B"))) == ["stored t", "offsetPassed p", "offsetReset p"])
            let b = try #require(try broker.trace(messageId: "ID-B"))
            let a = try #require(try broker.trace(messageId: "ID-A"))
            #expect(a.events[1].time <= b.events[1].time, "A was passed by the first commit, B by the second")
        }
    }

    @Test("a dead-lettered message shows its copy in the group's dead-letter queue")
    func deadLetterCopy() async throws {
        try await withBroker { broker in
            try await send(broker, topic: "t", body: "poison", properties: [MessageProperty.uniqueKey: "ID-P"])
            let d = GroupConfig(name: "d", maxDeliveryAttempts: 1)
            #expect(try await receiveSoon(broker, d, invisible: .milliseconds(50)).count == 1)
            try await Task.sleep(for: .milliseconds(80))
            // The second delivery would exceed one attempt: dead-lettered instead.
            #expect(try await broker.consumption.receive(group: d, topic: "t", queueIds: [0], batchSize: 1, invisibleDuration: .seconds(1), filter: .all).isEmpty)

            let trace = try #require(try broker.trace(messageId: "ID-P"))
            #expect(trace.copies.map(\.topic) == ["t", "%DLQ%d"])
            #expect(kinds(trace).first == "stored t")
            // The move is not an acknowledgement: the consumer never acked it.
            #expect(Set(kinds(trace).dropFirst()) == ["delivered d #1", "deadLettered d", "stored %DLQ%d"])
        }
    }

    @Test("an ack after a dead-letter copy was re-driven is still an ack")
    func ackAfterRedrive() async throws {
        try await withBroker { broker in
            try await send(broker, topic: "t", body: "poison", properties: [MessageProperty.uniqueKey: "ID-R"])
            let d = GroupConfig(name: "d", maxDeliveryAttempts: 1)
            let e = GroupConfig(name: "e", maxDeliveryAttempts: 5)
            #expect(try await receiveSoon(broker, d, invisible: .milliseconds(50)).count == 1)
            try await Task.sleep(for: .milliseconds(80))
            #expect(try await broker.consumption.receive(group: d, topic: "t", queueIds: [0], batchSize: 1, invisibleDuration: .seconds(1), filter: .all).isEmpty)
            // Another group acks the original after the move: only d's ack was the move.
            let got = try await receiveSoon(broker, e, invisible: .seconds(30))
            try await broker.consumption.ack(group: "e", topic: "t", handle: got[0].handle)
            let trace = try #require(try broker.trace(messageId: "ID-R"))
            #expect(kinds(trace).contains("deadLettered d") && kinds(trace).contains("acked e") && !kinds(trace).contains("acked d"))
        }
    }

    @Test("a journal scan limit is reported, not silently applied")
    func truncation() async throws {
        try await withBroker { broker in
            try await send(broker, topic: "t", body: "m", properties: [MessageProperty.uniqueKey: "ID-T"])
            let g = GroupConfig(name: "g", maxDeliveryAttempts: 50)
            for _ in 0..<3 {
                #expect(try await receiveSoon(broker, g, invisible: .milliseconds(20)).count == 1)
                try await Task.sleep(for: .milliseconds(40))
            }
            let whole = try #require(try broker.trace(messageId: "ID-T"))
            #expect(!whole.truncated && whole.events.filter { $0.kind == .delivered }.count == 3)
            let cut = try #require(try broker.trace(messageId: "ID-T", journalLimit: 1))
            #expect(cut.truncated && cut.journalRecordsScanned == 1)
            #expect(cut.events.filter { $0.kind == .delivered }.count == 1)
        }
    }
}
