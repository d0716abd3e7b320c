import Foundation
@testable import RocketMQBroker
import Testing

/// Topic and group tables: admin changes are on disk when the call returns; auto-created entries
/// are written in the background, and never lost to a later change or a clean shutdown.
@Suite struct ConfigTableTests {
    func withTablePath(_ body: (String) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "config-table-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await body(directory + "/topics.json")
    }

    func onDisk(_ path: String) throws -> [String] {
        try ConfigTable<TopicConfig>(path: path).all.map(\.name)
    }

    @Test func putAndRemoveAreOnDiskWhenTheyReturn() async throws {
        try await withTablePath { path in
            let table = try ConfigTable<TopicConfig>(path: path)
            #expect(try table.put("a", TopicConfig(name: "a")))
            #expect(try !table.put("a", TopicConfig(name: "a")), "no change")
            #expect(try onDisk(path) == ["a"])
            #expect(try table.remove("a"))
            #expect(try onDisk(path) == [])
        }
    }

    @Test func anAutoCreatedEntryReachesTheFileInTheBackground() async throws {
        try await withTablePath { path in
            let table = try ConfigTable<TopicConfig>(path: path)
            let made = try table.putIfAbsent("auto") { TopicConfig(name: "auto", queueCount: 3) }
            #expect(made.queueCount == 3 && table["auto"]?.queueCount == 3)
            // Already present: the existing value, not a new one.
            #expect(try table.putIfAbsent("auto") { TopicConfig(name: "auto", queueCount: 9) }.queueCount == 3)
            var written = false
            for _ in 0..<500 where !written {  // 5 s at most
                written = (try? onDisk(path)) == ["auto"]
                if !written { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(written)
        }
    }

    @Test func flushAndLaterChangesKeepAutoCreatedEntries() async throws {
        try await withTablePath { path in
            let table = try ConfigTable<TopicConfig>(path: path)
            for i in 0..<50 { _ = try table.putIfAbsent("auto-\(i)") { TopicConfig(name: "auto-\(i)") } }
            // A synchronous change writes the whole table, the pending entries with it.
            try table.put("admin", TopicConfig(name: "admin"))
            #expect(try onDisk(path).count == 51)
            _ = try table.putIfAbsent("late") { TopicConfig(name: "late") }
            try table.flush()
            #expect(try onDisk(path).contains("late"))
            // A background write that runs after this must not go back to an older table.
            try table.remove("admin")
            try await Task.sleep(for: .milliseconds(100))
            let names = try onDisk(path)
            #expect(names.count == 51 && !names.contains("admin"))
        }
    }

    @Test func readAndWriteQueueCountsAreKeptAndChecked() async throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "broker-rw-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // A config file may give the two counts alone: the larger is the queue count.
        let fromFile = try JSONDecoder().decode(TopicConfig.self, from: Data(#"{"name": "t", "readQueueCount": 8, "writeQueueCount": 4}"#.utf8))
        #expect((fromFile.queueCount, fromFile.readQueues, fromFile.writeQueues) == (8, 8, 4))
        #expect(fromFile == TopicConfig(name: "t", readQueues: 8, writeQueues: 4))
        #expect(try JSONDecoder().decode(TopicConfig.self, from: JSONEncoder().encode(fromFile)) == fromFile)
        #expect(TopicConfig(name: "t", readQueues: 4, writeQueues: 4) == TopicConfig(name: "t", queueCount: 4), "equal counts are plain")
        do {
            let broker = try Broker(configuration: testConfiguration(directory))
            try broker.upsertTopic(fromFile)
            let topic = try broker.topic(named: "t")
            #expect(topic.writeQueues == 4 && topic.isReadable(queue: 7) && !topic.isReadable(queue: 8))
            // The broker places messages among the write queues only, however asked.
            let placed = Set((0..<64).map { i in
                broker.queue(for: topic, requested: Int32(i % 8), messageGroup: i % 3 == 0 ? "g\(i)" : nil, clientChoosesQueues: true)
            })
            #expect(placed == [0, 1, 2, 3])
            var bad = fromFile
            bad.readQueueCount = 0
            #expect(throws: BrokerError.self) { try broker.upsertTopic(bad) }
            bad.readQueueCount = 9
            #expect(throws: BrokerError.self) { try broker.upsertTopic(bad) }
            await broker.shutdown()
        }
        let reopened = try Broker(configuration: testConfiguration(directory))
        #expect(reopened.topics["t"] == fromFile)
        await reopened.shutdown()
    }

    @Test func autoCreatedTopicsAndGroupsSurviveARestart() async throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "broker-test-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let broker = try Broker(configuration: testConfiguration(directory))
            _ = try broker.topic(named: "AutoTopic")
            _ = try broker.group(named: "AutoGroup")
            await broker.shutdown()
        }
        let reopened = try Broker(configuration: testConfiguration(directory))
        #expect(reopened.topics["AutoTopic"] != nil && reopened.groups["AutoGroup"] != nil)
        await reopened.shutdown()
    }
}
