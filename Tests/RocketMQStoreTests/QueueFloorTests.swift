import Foundation
import Testing
@testable import RocketMQStore

/// A deleted topic's messages stay gone (`clearTopic`): for readers now, after a clean or a
/// crashed restart, with its ConsumeQueues rebuilt from the log, and on a replica.
@Suite struct QueueFloorTests {
    /// Bodies readable from `topic`'s queue, from its start.
    private func bodies(_ store: MessageStore, _ topic: String, queue: Int32) throws -> [[UInt8]] {
        try store.messages(topic: topic, queueId: queue, from: 0, maxCount: 1000).messages.map(\.body)
    }

    /// Appends `perQueue` messages to each of `topic`'s 2 queues (bodies [queue, i]).
    private func fill(_ store: MessageStore, _ topic: String, perQueue: Int, from first: Int = 0) async throws {
        for i in first..<(first + perQueue) {
            for q in Int32(0)..<2 {
                _ = try await store.append(message(topic, queue: q, body: [UInt8(q), UInt8(i)], keys: "k\(i)"))
            }
        }
    }

    /// A store with 10 messages in each of T's queues, T cleared, then `count` more sent (bodies
    /// [queue, 100 + i]), shut down cleanly.
    private func deleteAfterTen(_ config: StoreConfiguration, thenSend count: Int) async throws {
        let store = try openStore(config)
        try await fill(store, "T", perQueue: 10)
        try store.clearTopic("T")
        try await fill(store, "T", perQueue: count, from: 100)
        store.shutdown()
    }

    @Test func aClearedTopicServesOnlyWhatCameAfter() async throws {
        let dir = TempDirectory()
        let store = try openStore(testConfiguration(dir.path, segmentSize: 8192))
        try await fill(store, "T", perQueue: 30)
        try await fill(store, "Other", perQueue: 5)
        let end = store.commitLogMaxOffset
        #expect(store.topicDeletedAt("T") == nil)
        let floors = try store.clearTopic("T")
        #expect(store.topicDeletedAt("T") == end, "where the log ended: what was meant for T before then went with it")
        #expect(floors == [QueueID(topic: "T", queueId: 0): 30, QueueID(topic: "T", queueId: 1): 30])
        #expect(try bodies(store, "T", queue: 0).isEmpty)
        #expect(store.offsetRange(topic: "T", queueId: 1) == 30..<30)
        // Another topic is untouched; the cleared one numbers on from its old end.
        #expect(try bodies(store, "Other", queue: 1).count == 5)
        let next = try await store.append(message("T", queue: 0, body: [9]))
        #expect(next.queueOffset == 30)
        #expect(try bodies(store, "T", queue: 0) == [[9]])
        #expect(try store.messages(topic: "T", queueId: 0, from: 3, maxCount: 10).messages.map(\.queueOffset) == [30])
        // Lookups by key still find the old records, as RocketMQ's do.
        #expect(store.messages(key: "k3", topic: "T").count == 2)
        // Clearing again moves the floor to the new end; an empty topic sets none.
        #expect(try store.clearTopic("T")[QueueID(topic: "T", queueId: 0)] == 31)
        // A topic with no message yet (its delay messages pending, say) is noted as deleted all the same.
        #expect(try store.clearTopic("Unknown").isEmpty)
        #expect(store.topicDeletedAt("Unknown") == store.commitLogMaxOffset)
        store.shutdown()
    }

    @Test func floorsHoldAcrossCleanAndCrashedRestarts() async throws {
        let dir = TempDirectory()
        var config = testConfiguration(dir.path, segmentSize: 8192)
        config.checkpointInterval = .seconds(3600)  // the crash below leaves the tail to redo
        do {
            let store = try openStore(config)
            try await fill(store, "T", perQueue: 40)
            try store.clearTopic("T")
            try await fill(store, "T", perQueue: 3, from: 100)
            store.shutdown()
        }
        do {
            let store = try openStore(config)
            #expect(store.topicDeletedAt("T") != nil)
            #expect(try bodies(store, "T", queue: 1) == [[1, 100], [1, 101], [1, 102]])
            try await fill(store, "T", perQueue: 2, from: 103)
            store.abandonForTesting()  // a crash: the log is redispatched from before the clear
        }
        do {
            let store = try openStore(config)
            #expect(try bodies(store, "T", queue: 0) == [[0, 100], [0, 101], [0, 102], [0, 103], [0, 104]])
            #expect(store.offsetRange(topic: "T", queueId: 0) == 40..<45)
            store.shutdown()
        }
        // Every ConsumeQueue lost: rebuilt from the log, the old messages are still not served,
        // and a queue of the topic that had no message since still numbers on from its floor.
        try FileManager.default.removeItem(atPath: dir.path + "/consumequeue")
        try FileSystem.remove(dir.path + "/checkpoint")
        let store = try openStore(config)
        defer { store.shutdown() }
        #expect(try bodies(store, "T", queue: 1) == [[1, 100], [1, 101], [1, 102], [1, 103], [1, 104]])
        #expect(store.offsetRange(topic: "T", queueId: 1) == 40..<45)
    }

    /// Entries below the floor lost in a crash before the deletion (their records too) leave a
    /// hole the log cannot fill: loading the queue must not end it there, below the entries of
    /// the topic created again.
    @Test func aHoleBelowTheFloorDoesNotEndTheQueue() async throws {
        let dir = TempDirectory()
        let config = testConfiguration(dir.path, segmentSize: 8192)
        try await deleteAfterTen(config, thenSend: 3)
        let file = try StoreFile(path: dir.path + "/consumequeue/T/0/" + FileSystem.offsetName(0), create: false)
        try file.write([UInt8](repeating: 0, count: 3 * 20), at: 7 * 20)
        let store = try openStore(config)
        defer { store.shutdown() }
        #expect(try bodies(store, "T", queue: 0) == [[0, 100], [0, 101], [0, 102]])
        #expect(store.offsetRange(topic: "T", queueId: 0) == 10..<13)
        #expect(try await store.append(message("T", queue: 0, body: [7])).queueOffset == 13)
    }

    @Test func aQueueWhoseRecordsAreAllGoneStillStartsAtItsFloor() async throws {
        let dir = TempDirectory()
        let config = testConfiguration(dir.path, segmentSize: 8192)
        try await deleteAfterTen(config, thenSend: 0)
        // No ConsumeQueue files and a checkpoint past every record: nothing recreates the queue.
        try FileManager.default.removeItem(atPath: dir.path + "/consumequeue")
        let store = try openStore(config)
        defer { store.shutdown() }
        let next = try await store.append(message("T", queue: 1, body: [5]))
        #expect(next.queueOffset == 10)
        #expect(try bodies(store, "T", queue: 1) == [[5]])
    }

    @Test func aReplicaTakesItsMastersFloors() async throws {
        let masterDir = TempDirectory("master"), replicaDir = TempDirectory("replica")
        let master = try openStore(testConfiguration(masterDir.path, segmentSize: 8192))
        defer { master.shutdown() }
        let replica = try openStore(testConfiguration(replicaDir.path, segmentSize: 8192))
        defer { replica.shutdown() }
        replica.isReplicaLog = true
        try await fill(master, "T", perQueue: 20)
        try master.clearTopic("T")
        try await fill(master, "T", perQueue: 1, from: 50)
        var offset: Int64 = 0
        for _ in 0..<1000 where offset < master.commitLogMaxOffset {
            offset = try replica.appendReplicated(try master.readLog(from: offset, maxBytes: 4096), at: offset)
        }
        #expect(try bodies(replica, "T", queue: 0).count == 21)  // the records alone carry no floor
        let file = try #require(try AtomicFile.read(master.configDirectory + "/" + MessageStore.queueFloorsFile))
        try replica.applyQueueFloors(json: file)
        #expect(try bodies(replica, "T", queue: 0) == [[0, 50]])
        #expect(replica.topicDeletedAt("T") == master.topicDeletedAt("T"))
        #expect(try AtomicFile.read(replica.configDirectory + "/" + MessageStore.queueFloorsFile) != nil)
        // An older file lowers nothing; a damaged one is refused.
        try replica.applyQueueFloors(json: Array(#"{"floors":[{"topic":"T","queueId":0,"offset":3}]}"#.utf8))
        #expect(replica.offsetRange(topic: "T", queueId: 0) == 20..<21)
        #expect(throws: StoreError.self) { try replica.applyQueueFloors(json: Array("not json".utf8)) }
    }
}
