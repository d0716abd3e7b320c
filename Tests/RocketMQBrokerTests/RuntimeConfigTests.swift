import Foundation
@testable import RocketMQBroker
import RocketMQStore
import Testing

@Suite("Runtime configuration")
struct RuntimeConfigTests {
    @Test("retention and auto-create change at once, are validated, and survive a restart")
    func updatesApplyValidateAndPersist() async throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "runtime-config-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var configuration = testConfiguration(directory)
        configuration.autoCreateTopics = false

        let broker = try Broker(configuration: configuration)
        try broker.updateConfiguration(["fileReservedHours": "24", "deleteWhenHour": "3", "diskCleanRatio": "0.6", "autoCreateTopics": "true"])
        #expect(broker.store.retentionPolicy == RetentionPolicy(fileReservedTime: .seconds(24 * 3600), deleteWhenHour: 3, diskCleanRatio: 0.6))
        #expect(broker.configuration.autoCreateTopics)
        #expect(throws: BrokerError.self) { try broker.updateConfiguration(["deleteWhenHour": "24"]) }
        #expect(throws: BrokerError.self) { try broker.updateConfiguration(["diskCleanRatio": "0.95"]) }
        #expect(throws: BrokerError.self) { try broker.updateConfiguration(["flushMode": "sync"]) }
        #expect(throws: BrokerError.self) { try broker.updateConfiguration(["noSuchKey": "1"]) }
        // A rejected update changes nothing.
        #expect(broker.store.retentionPolicy.deleteWhenHour == 3)
        await broker.shutdown()

        let restarted = try Broker(configuration: configuration)
        #expect(restarted.store.retentionPolicy.fileReservedTime == .seconds(24 * 3600))
        #expect(restarted.configuration.autoCreateTopics)
        await restarted.shutdown()
    }
}
