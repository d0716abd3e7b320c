import Foundation
@testable import RocketMQBroker
import Testing

/// A promoted broker's master epoch: above any epoch it saw its master have, kept across
/// restarts whatever the flags, and sent in its registration.
@Suite struct MasterEpochTests {
    /// A slave of a master that is gone (nothing listens at its address).
    func slaveConfiguration(_ directory: String) -> BrokerConfiguration {
        var configuration = testConfiguration(directory)
        configuration.role = .slave
        configuration.brokerId = 1
        configuration.masterAddress = "127.0.0.1:1"
        return configuration
    }

    @Test func aPromotionTakesAnEpochAboveTheFollowedMastersWhateverTheClockSays() async throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "epoch-test-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // The master it followed was promoted on a machine whose clock runs a day ahead.
        let ahead = Int64((Date().timeIntervalSince1970 + 86_400) * 1000)
        do {
            let slave = try Broker(configuration: slaveConfiguration(directory))
            #expect(slave.registration.masterEpoch == 0)
            slave.noteFollowedMasterEpoch(ahead)
            slave.noteFollowedMasterEpoch(ahead - 5)  // an older copy changes nothing
            await slave.shutdown()
        }
        // After a restart (the note is kept) the promotion ranks above that master.
        let promoted = try Broker(configuration: slaveConfiguration(directory))
        try await promoted.promoteToMaster(force: true)
        #expect(promoted.masterEpoch == ahead + 1)
        #expect(promoted.registration.brokerId == 0 && promoted.registration.masterEpoch == ahead + 1)
        await promoted.shutdown()

        // Restarted with master flags rather than its slave ones, it keeps the epoch.
        var masterFlags = testConfiguration(directory)
        masterFlags.role = .asyncMaster
        let restarted = try Broker(configuration: masterFlags)
        #expect(restarted.masterEpoch == ahead + 1)
        #expect(restarted.registration.masterEpoch == ahead + 1)
        await restarted.shutdown()
    }

    @Test func aSupersededMasterTakesNoWritesAndIsPromotedAgainOnlyWithForce() async throws {
        try await withBroker { broker in
            _ = try await send(broker, topic: "T", body: "before")
            broker.supersededAsMaster("a test: broker-a's master at 127.0.0.1:2 has the higher epoch 9")
            #expect(broker.isSlave)
            await #expect(throws: (any Error).self) { _ = try await send(broker, topic: "T", body: "after") }
            await #expect(throws: BrokerError.self) { try await broker.promoteToMaster() }
            try await broker.promoteToMaster(force: true)
            #expect(!broker.isSlave && broker.masterEpoch > 0)
            _ = try await send(broker, topic: "T", body: "after promotion")
        }
    }
}
