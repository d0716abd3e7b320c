import Foundation
@testable import RocketMQBroker
import RocketMQStore
import Testing

@Suite("Consumer progress snapshots, written off the consumption actor")
struct SnapshotWriterTests {
    private struct Sample: Codable, Sendable, Equatable { var n: UInt64 }

    private func read(_ path: String) throws -> Sample {
        try JSONDecoder().decode(Sample.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }

    @Test("an older snapshot never replaces a newer one, whatever order the writes come in")
    func newestWins() async throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "snapshot-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/progress.json"
        let writer = SnapshotWriter(path: path)
        try await writer.write(Sample(n: 2), sequence: 2)
        try await writer.write(Sample(n: 1), sequence: 1)
        #expect(try read(path) == Sample(n: 2))
        try await writer.write(Sample(n: 3), sequence: 3)
        #expect(try read(path) == Sample(n: 3))
        // Many racing writers: the file ends with the highest number.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for n in (4...40).shuffled() { group.addTask { try await writer.write(Sample(n: UInt64(n)), sequence: UInt64(n)) } }
            try await group.waitForAll()
        }
        #expect(try read(path) == Sample(n: 40))
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp"))
    }

    @Test("a failed write reports its error")
    func failureIsReported() async {
        let writer = SnapshotWriter(path: "/nonexistent-\(UUID().uuidString)/progress.json")
        await #expect(throws: StoreError.self) { try await writer.write(Sample(n: 1), sequence: 1) }
    }

    @Test("a snapshot call that finds nothing new returns only once the snapshot taken before it is on disk")
    func concurrentCallerWaitsForTheWriteUnderWay() async throws {
        try await withBroker { broker in
            let group = GroupConfig(name: "g", maxDeliveryAttempts: 3)
            try broker.upsertGroup(group)
            try await send(broker, topic: "t", body: "m")
            let got = try await broker.consumption.receive(group: group, topic: "t", queueIds: [0], batchSize: 1, invisibleDuration: .seconds(60), filter: .all)
            #expect(got.count == 1)
            let path = broker.store.configDirectory + "/consumerProgress.json"
            try? FileManager.default.removeItem(atPath: path)
            let gate = DispatchSemaphore(value: 0)
            broker.consumption.snapshotWriterForTesting.holdForTesting(until: gate)
            // The first caller takes the snapshot; its write waits behind the gate.
            let first = Task { try await broker.consumption.snapshot() }
            try await Task.sleep(for: .milliseconds(100))
            // The second finds nothing changed since: it must still wait for that write.
            let second = Task { () throws -> Bool in
                try await broker.consumption.snapshot()
                return FileManager.default.fileExists(atPath: path)
            }
            try await Task.sleep(for: .milliseconds(100))
            gate.signal()
            #expect(try await second.value)
            try await first.value
        }
    }

    @Test("a progress snapshot taken while consumers ack holds their progress, and a restart restores it")
    func snapshotRestoresProgress() async throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "broker-test-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let group = GroupConfig(name: "g", maxDeliveryAttempts: 3)
        do {
            let broker = try Broker(configuration: testConfiguration(directory))
            try broker.upsertGroup(group)
            for i in 0..<10 { try await send(broker, topic: "t", body: "m\(i)") }
            let got = try await broker.consumption.receive(group: group, topic: "t", queueIds: [0], batchSize: 4, invisibleDuration: .seconds(60), filter: .all)
            #expect(got.count == 4)
            // Snapshots and acks interleave: the acks are not held up by the write.
            async let written: Void = broker.persistProgress()
            for delivery in got { try await broker.consumption.ack(group: "g", topic: "t", handle: delivery.handle) }
            await written
            await broker.persistProgress()
            await broker.shutdown()
        }
        // The file itself holds the acks (the restart below also replays the journal after it).
        let snapshot = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/config/consumerProgress.json"))) as? [String: Any]
        #expect(snapshot?["journalOffset"] as? Int ?? 0 > 0)
        let entries = snapshot?["queues"] as? [[String: Any]] ?? []
        let queue = entries.first { ($0["key"] as? [String: Any])?["topic"] as? String == "t" }
        #expect((queue?["progress"] as? [String: Any])?["committed"] as? Int == 4)
        let restarted = try Broker(configuration: testConfiguration(directory))
        #expect(await restarted.consumption.consumerOffset(group: "g", topic: "t", queueId: 0) == 4)
        await restarted.shutdown()
    }
}
