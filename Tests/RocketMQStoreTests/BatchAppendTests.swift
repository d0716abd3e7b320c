import Foundation
@testable import RocketMQStore
import Synchronization
import Testing

/// `MessageStore.append(batch:)`: a batch is stored whole or not at all, in one segment, as
/// RocketMQ stores a batch. A producer told that its batch failed sends it again: had a prefix
/// been stored, those messages would then be stored twice.
@Suite("Batch appends")
struct BatchAppendTests {
    /// The batch's outcome, once its flush (if any) is done.
    private func append(_ store: MessageStore, batch messages: [MessageToAppend]) async throws -> Result<[AppendResult], StoreError> {
        let encoded = try messages.map { try store.encode($0) }
        return await withCheckedContinuation { continuation in
            store.append(batch: encoded, onWritten: { _ in }) { continuation.resume(returning: $0) }
        }
    }

    private func bodies(_ count: Int, size: Int = 1000, first: UInt8 = 0) -> [MessageToAppend] {
        (0..<count).map { message(body: [UInt8](repeating: first + UInt8($0), count: size)) }
    }

    @Test("past the sync-flush backlog a batch is refused whole, not cut after the messages that fit")
    func aBatchPastTheBacklogIsRefusedWhole() async throws {
        let dir = TempDirectory()
        let store = try openStoreWithStuckDisk(dir.path, backlogLimit: 4096)
        defer { store.shutdown() }
        let first = Mutex<Result<AppendResult, StoreError>?>(nil)
        store.append(try store.encode(message(body: [UInt8](repeating: 9, count: 1000)))) { outcome in first.withLock { $0 = outcome } }
        // ~1.1 KiB staged: two more records would fit under 4 KiB, four do not.
        let refused = Task { try await append(store, batch: bodies(4)) }
        try await Task.sleep(for: .milliseconds(50))  // the refusal comes at once, the flush is held
        store.flushService.holdFlushes(false)
        switch try await refused.value {
        case .failure(.flushBacklog): break
        case let other: Issue.record("expected flushBacklog, got \(other)")
        }
        #expect(store.maxOffset(topic: "TopicA", queueId: 0) == 1, "nothing of the refused batch is in the queue")
        let stored = try await append(store, batch: bodies(2, first: 20)).get()
        #expect(stored.map(\.queueOffset) == [1, 2])
        #expect(try store.allRecords().map { $0.body.first } == [9, 20, 21], "the log holds no record of the refused batch")
        #expect(try first.withLock({ $0 })?.get().queueOffset == 0)
    }

    @Test("a batch that does not fit in the rest of the segment goes whole into the next one", arguments: [FlushMode.sync, .async])
    func aBatchStaysInOneSegment(mode: FlushMode) async throws {
        let dir = TempDirectory()
        let segment: Int64 = 8192
        let config = testConfiguration(dir.path, mode: mode, segmentSize: segment)
        var expected: [UInt8] = []
        do {
            let store = try openStore(config)
            for single in bodies(5, first: 100) {
                _ = try await store.append(single)
                expected.append(single.body[0])
            }
            #expect(store.commitLog.writtenPosition < segment - 2000, "room for one more record, not three")
            let results = try await append(store, batch: bodies(3)).get()
            expected += [0, 1, 2]
            #expect(results.first?.physicalOffset == segment, "the batch starts the next segment")
            for (a, b) in zip(results, results.dropFirst()) {
                #expect(b.physicalOffset == a.physicalOffset + Int64(a.wroteBytes), "one record after the other")
            }
            #expect(results.map(\.queueOffset) == [5, 6, 7])
            #expect(Set(results.map(\.storeTimestamp)).count == 1)
            #expect(try store.allRecords().map { $0.body[0] } == expected)
            try store.verifyConsistency()
            store.abandonForTesting()  // a crash: recovery reads the batch back from the log
        }
        let store = try openStore(config)
        defer { store.shutdown() }
        #expect(try store.allRecords().map { $0.body[0] } == expected)
        #expect(try store.messages(topic: "TopicA", queueId: 0, from: 5, maxCount: 10).messages.map { $0.body[0] } == [0, 1, 2])
        try store.verifyConsistency()
    }

    @Test("a batch that exactly fills the rest of the segment stays in it", arguments: [FlushMode.sync, .async])
    func aBatchThatExactlyFillsTheSegment(mode: FlushMode) async throws {
        let dir = TempDirectory()
        let segment: Int64 = 8192
        let store = try openStore(testConfiguration(dir.path, mode: mode, segmentSize: segment))
        defer { store.shutdown() }
        let first = try await store.append(message(body: [UInt8](repeating: 1, count: 1000)))
        let overhead = Int(first.wroteBytes) - 1000  // a record's bytes besides its body
        let left = Int(segment) - Int(first.wroteBytes)
        // Two records that together take exactly what is left.
        let a = left / 2 - overhead, b = left - left / 2 - overhead
        let results = try await append(store, batch: [message(body: [UInt8](repeating: 2, count: a)), message(body: [UInt8](repeating: 3, count: b))]).get()
        #expect(results.map(\.physicalOffset) == [first.wroteBytes, first.wroteBytes + results[0].wroteBytes].map(Int64.init))
        #expect(results.last.map { $0.physicalOffset + Int64($0.wroteBytes) } == segment)
        let next = try await store.append(message(body: [4]))
        #expect(next.physicalOffset == segment)
        #expect(try store.allRecords().map { $0.body[0] } == [1, 2, 3, 4])
        try store.verifyConsistency()
    }

    @Test("a batch larger than a segment, or with a message larger than the store takes, is refused whole")
    func anOversizedBatchIsRefusedWhole() async throws {
        let dir = TempDirectory()
        let store = try openStore(testConfiguration(dir.path, segmentSize: 8192))
        defer { store.shutdown() }
        _ = try await store.append(message(body: [1]))
        switch try await append(store, batch: bodies(8)) {
        case .failure(.messageTooLarge): break
        case let other: Issue.record("expected messageTooLarge, got \(other)")
        }
        var mixed = bodies(3)
        mixed[2] = message(body: [UInt8](repeating: 7, count: 40_000))  // over maxMessageSize (32 KiB here)
        switch try await append(store, batch: mixed) {
        case .failure(.messageTooLarge): break
        case let other: Issue.record("expected messageTooLarge, got \(other)")
        }
        #expect(store.maxOffset(topic: "TopicA", queueId: 0) == 1)
        #expect(try store.allRecords().map(\.body) == [[1]])
        #expect(try await append(store, batch: bodies(2)).get().map(\.queueOffset) == [1, 2])
    }

    @Test("a full disk refuses a batch whole")
    func aFullDiskRefusesTheBatch() async throws {
        let dir = TempDirectory()
        let store = try openStore(testConfiguration(dir.path))
        defer { store.shutdown() }
        store.diskFullRatio.store(0.95.bitPattern, ordering: .relaxed)
        switch try await append(store, batch: bodies(3)) {
        case .failure(.diskFull): break
        case let other: Issue.record("expected diskFull, got \(other)")
        }
        store.diskFullRatio.store(0, ordering: .relaxed)
        #expect(store.maxOffset(topic: "TopicA", queueId: 0) == 0)
        #expect(try await append(store, batch: bodies(3)).get().map(\.queueOffset) == [0, 1, 2])
    }

    @Test("a batch may span queues: each message gets the next offset of its own queue")
    func aBatchAcrossQueues() async throws {
        let dir = TempDirectory()
        let store = try openStore(testConfiguration(dir.path))
        defer { store.shutdown() }
        _ = try await store.append(message(queue: 1, body: [0]))
        let batch = [message(queue: 0, body: [1]), message(queue: 1, body: [2]), message(queue: 1, body: [3]), message(queue: 0, body: [4])]
        let results = try await append(store, batch: batch).get()
        #expect(results.map(\.queueOffset) == [0, 1, 2, 1])
        #expect(try store.messages(topic: "TopicA", queueId: 1, from: 0, maxCount: 10).messages.map(\.body) == [[0], [2], [3]])
        #expect(try store.messages(topic: "TopicA", queueId: 0, from: 0, maxCount: 10).messages.map(\.body) == [[1], [4]])
        try store.verifyConsistency()
    }
}
