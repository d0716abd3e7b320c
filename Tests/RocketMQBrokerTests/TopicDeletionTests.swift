import Foundation
@testable import RocketMQBroker
import RocketMQStore
import Testing

@Suite("Deleting a topic")
struct TopicDeletionTests {
    let group = GroupConfig(name: "g", maxDeliveryAttempts: 3)

    @Test("a topic created again under a deleted one's name starts empty, also after a restart, and the old messages are no lag")
    func deletedMessagesStayGone() async throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "broker-delete-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var configuration = testConfiguration(directory)
        configuration.autoCreateTopics = false

        let before = try Broker(configuration: configuration)
        try before.upsertTopic(TopicConfig(name: "orders", queueCount: 2))
        for i in 0..<3 { try await send(before, topic: "orders", queue: 0, body: "old\(i)") }
        try await send(before, topic: "orders", queue: 1, body: "old-q1")
        // The group took and acked one: committed 1 of 3 in queue 0.
        let first = try await before.consumption.receive(group: group, topic: "orders", queueIds: [0], batchSize: 1, invisibleDuration: .seconds(60), filter: .all)
        try await before.consumption.ack(group: "g", topic: "orders", handle: try #require(first.first).handle)

        try before.deleteTopic("orders")
        #expect(before.topics["orders"] == nil)
        try before.upsertTopic(TopicConfig(name: "orders", queueCount: 2))
        try await send(before, topic: "orders", queue: 0, body: "new")
        // Two old messages the group never read are no lag: no one can read them any more.
        let standing = before.standing(topic: "orders", queueId: 0, committed: await before.consumption.consumerOffset(group: "g", topic: "orders", queueId: 0))
        #expect(standing.lag == 1)
        #expect(standing.brokerOffset == 4, "queue offsets go on from the deleted topic's end")
        let got = try await before.consumption.receive(group: group, topic: "orders", queueIds: [0, 1], batchSize: 10, invisibleDuration: .seconds(60), filter: .all)
        #expect(got.map(\.text) == ["new"])
        await before.shutdown()

        // After a restart (its queues redispatched from the log) a group new to the topic
        // still finds only what came after the deletion.
        let after = try Broker(configuration: configuration)
        let fresh = GroupConfig(name: "fresh", maxDeliveryAttempts: 3)
        let again = try await after.consumption.receive(group: fresh, topic: "orders", queueIds: [0, 1], batchSize: 10, invisibleDuration: .seconds(60), filter: .all)
        #expect(again.map(\.text) == ["new"])
        await after.shutdown()
    }
}
