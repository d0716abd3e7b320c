import Foundation
@testable import RocketMQBroker
import RocketMQNameServer
@testable import RocketMQStore
import Testing

@Suite("Recalling delay messages")
struct RecallTests {
    @Test("a recall survives a restart: the recalled message never reaches a group, the others do")
    func recallSurvivesARestart() async throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "recall-test-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let due = MessageStore.nowMilliseconds() + 3000  // recalls end 1 s before
        var broker = try Broker(configuration: testConfiguration(directory))
        _ = try broker.topic(named: "t")  // auto-created, as a send does
        for body in ["recalled", "kept"] {
            try await send(broker, topic: "t", body: body, properties: [StoredProperty.deliveryTime: String(due)])
        }
        let handle = RecallHandle(brokerName: broker.configuration.brokerName, queueId: 0, offset: 0, deliveryTime: due, messageId: "")
        let stored = try broker.store.messages(topic: "t", queueId: 0, from: 0, maxCount: 1).messages[0]
        var named = handle
        named.messageId = stored.messageId
        #expect(throws: BrokerError.self) { try broker.recall(topic: "t", handle: handle) }  // another id
        #expect(try broker.recall(topic: "t", handle: named) == stored.messageId)
        #expect(RecallHandle(parsing: named.description) == named)
        #expect(RecallHandle(parsing: "recall1:a:b:0:0:x") == nil)
        let odd = RecallHandle(brokerName: "zone:a%1", queueId: 3, offset: 7, deliveryTime: 9, messageId: "id:with%3Acolons")
        #expect(RecallHandle(parsing: odd.description) == odd)
        await broker.shutdown()

        broker = try Broker(configuration: testConfiguration(directory))
        let group = GroupConfig(name: "g", maxDeliveryAttempts: 3)
        var received: [String] = []
        for _ in 0..<200 where received.isEmpty {
            received = try await broker.consumption.receive(
                group: group, topic: "t", queueIds: [0], batchSize: 10, invisibleDuration: .seconds(30), filter: .all
            ).map(\.text)
            if received.isEmpty { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(received == ["kept"])
        #expect(MessageStore.nowMilliseconds() >= due)
        await broker.shutdown()
    }
}
