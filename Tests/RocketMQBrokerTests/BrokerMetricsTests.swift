import Foundation
@testable import RocketMQBroker
import RocketMQStore
import Testing

@Suite("Prometheus metrics of a broker")
struct BrokerMetricsTests {
    /// The samples of a text exposition, by series (`name{labels}` as written), and the TYPE lines.
    private func parse(_ bytes: [UInt8]) -> (samples: [String: Double], types: [String: String]) {
        var samples: [String: Double] = [:]
        var types: [String: String] = [:]
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                types[String(parts[2])] = String(parts[3])
            } else if !line.hasPrefix("#"), let space = line.lastIndex(of: " ") {
                samples[String(line[..<space])] = Double(line[line.index(after: space)...])
            }
        }
        return (samples, types)
    }

    @Test("messages in per topic, consumer lag and in-flight per group, store and process figures")
    func topicsAndGroups() async throws {
        try await withBroker { broker in
            try broker.upsertTopic(TopicConfig(name: "orders", queueCount: 2))
            try broker.upsertTopic(TopicConfig(name: "audit", queueCount: 1))
            for i in 0..<3 { try await send(broker, topic: "orders", queue: 0, body: "a\(i)") }
            for i in 0..<2 { try await send(broker, topic: "orders", queue: 1, body: "b\(i)") }
            try await send(broker, topic: "audit", body: "x")
            // A delay message waiting for its time: pending, not yet in audit's queue.
            let due = MessageStore.nowMilliseconds() + 60_000
            _ = try await broker.delays.schedule(MessageToAppend(topic: "audit", queueId: 0, body: Array("later".utf8)), due: due, broker: broker)
            // Group g takes two from queue 0 and acks the first: committed 1, one in flight;
            // queue 1 it never read counts from its start.
            let group = GroupConfig(name: "g", maxDeliveryAttempts: 3)
            try broker.upsertGroup(group)
            let got = try await broker.consumption.receive(
                group: group, topic: "orders", queueIds: [0], batchSize: 2, invisibleDuration: .seconds(60), filter: .all)
            #expect(got.count == 2)
            try await broker.consumption.ack(group: "g", topic: "orders", handle: got[0].handle)

            let metrics = BrokerMetrics(broker: broker)
            let (samples, types) = parse(await metrics.render())
            #expect(samples[#"rocketmq_messages_in_total{topic="orders"}"#] == 5)
            #expect(samples[#"rocketmq_messages_in_total{topic="audit"}"#] == 1)
            #expect(types["rocketmq_messages_in_total"] == "counter")
            #expect(samples[#"rocketmq_consumer_lag_messages{consumer_group="g",topic="orders"}"#] == 4)
            #expect(samples[#"rocketmq_consumer_inflight_messages{consumer_group="g",topic="orders"}"#] == 1)
            #expect(types["rocketmq_consumer_lag_messages"] == "gauge")
            #expect(samples[#"rocketmq_consumer_lag_messages{consumer_group="g",topic="audit"}"#] == nil, "no progress in audit: not its topic")
            #expect(samples["rocketmq_topics"] == 2)
            #expect(samples["rocketmq_delay_messages_pending"] == 1)
            #expect(samples["rocketmq_delay_messages_delivered_total"] == 0)
            #expect(samples["rocketmq_delay_messages_rolled_total"] == 0)
            #expect((samples["rocketmq_storage_size_bytes"] ?? 0) > 6 * 100, "six records of ~100+ bytes")
            #expect((samples["process_resident_memory_bytes"] ?? 0) > Double(1 << 20))
            #expect((samples["process_cpu_seconds_total"] ?? 0) > 0)
            #expect(samples[#"rocketmq_broker_info{cluster="DefaultCluster",broker="broker-a",flush_mode="async"}"#] == 1)

            // The delay message rolled forward, then delivered.
            #expect(await broker.delays.roll(storedBefore: MessageStore.nowMilliseconds() + 1, broker: broker) == 1)
            #expect(parse(await metrics.render()).0["rocketmq_delay_messages_rolled_total"] == 1)
            #expect(await broker.delays.deliverDue(now: due + 1, broker: broker) == 1)
            let (delivered, _) = parse(await metrics.render())
            #expect(delivered["rocketmq_delay_messages_delivered_total"] == 1)
            #expect(delivered["rocketmq_delay_messages_pending"] == 0)

            // Acks move lag; a deleted topic's series go away on the next scrape.
            try await broker.consumption.ack(group: "g", topic: "orders", handle: got[1].handle)
            try broker.deleteTopic("audit")
            let (after, _) = parse(await metrics.render())
            #expect(after[#"rocketmq_consumer_lag_messages{consumer_group="g",topic="orders"}"#] == 3)
            #expect(after[#"rocketmq_consumer_inflight_messages{consumer_group="g",topic="orders"}"#] == 0)
            #expect(after[#"rocketmq_messages_in_total{topic="audit"}"#] == nil)
            #expect(after["rocketmq_topics"] == 1)

            // A deleted group's lag is no longer reported (its progress stays in the journal).
            _ = try broker.groups.remove("g")
            let (gone, _) = parse(await metrics.render())
            #expect(gone[#"rocketmq_consumer_lag_messages{consumer_group="g",topic="orders"}"#] == nil)
            #expect(gone[#"rocketmq_messages_in_total{topic="orders"}"#] == 5)

            // A counter never falls: shrinking the topic to one queue keeps queue 1's messages counted.
            try broker.upsertTopic(TopicConfig(name: "orders", queueCount: 1))
            let (shrunk, _) = parse(await metrics.render())
            #expect(shrunk[#"rocketmq_messages_in_total{topic="orders"}"#] == 5)
        }
    }

    @Test("with sync flush, the group-commit totals count every acknowledged append")
    func groupCommit() async throws {
        try await withBroker({ $0.store.flushMode = .sync }) { broker in
            try broker.upsertTopic(TopicConfig(name: "t", queueCount: 4))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                for i in 0..<40 { tasks.addTask { try await send(broker, topic: "t", queue: Int32(i % 4), body: "m\(i)") } }
                try await tasks.waitForAll()
            }
            let (samples, types) = parse(await BrokerMetrics(broker: broker).render())
            #expect(samples["rocketmq_storage_group_commit_appends_total"] == 40)
            let flushes = samples["rocketmq_storage_flushes_total"] ?? 0
            #expect(flushes >= 1 && flushes <= 40)
            #expect((samples["rocketmq_storage_flush_seconds_total"] ?? 0) > 0)
            #expect(samples["rocketmq_storage_flush_behind_bytes"] == 0, "every append was acknowledged, so synced")
            #expect(types["rocketmq_storage_flushes_total"] == "counter")
        }
    }
}
