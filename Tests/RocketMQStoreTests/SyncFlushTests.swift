import Foundation
import Synchronization
import Testing
@testable import RocketMQStore

/// Sync flush's write path: records are staged in memory and written by the flusher just
/// before its `fdatasync` (`StagedWrites`), over zeros the writer prepared ahead.
@Suite("Sync flush: staged writes", .serialized, .timeLimit(.minutes(1)))
struct SyncFlushTests {
    /// Outcomes of `append(_:completion:)`, in completion order.
    final class Outcomes: Sendable {
        private let items = Mutex<[Result<AppendResult, StoreError>]>([])
        func add(_ outcome: Result<AppendResult, StoreError>) { items.withLock { $0.append(outcome) } }
        var all: [Result<AppendResult, StoreError>] { items.withLock { $0 } }
        var succeeded: [AppendResult] { all.compactMap { try? $0.get() } }
    }

    /// The raw bytes of the CommitLog's segment files on disk, in order.
    private func bytesOnDisk(_ dir: String) throws -> [UInt8] {
        let log = dir + "/commitlog"
        let names = try FileManager.default.contentsOfDirectory(atPath: log).filter { $0.count == 20 }.sorted()
        return try names.flatMap { [UInt8](try Data(contentsOf: URL(fileURLWithPath: log + "/" + $0))) }
    }

    @Test("the store's threads carry their names, for top -H and perf")
    func threadsAreNamed() async throws {
        let dir = TempDirectory()
        let store = try openStore(testConfiguration(dir.path, mode: .sync, segmentSize: 1 << 20))
        defer { store.shutdown() }
        let tasks = "/proc/self/task"
        var names: Set<String> = []
        // The threads name themselves once running.
        for _ in 0..<100 {
            names = Set(try FileManager.default.contentsOfDirectory(atPath: tasks).compactMap { tid in
                (try? String(contentsOfFile: "\(tasks)/\(tid)/comm", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            })
            if names.isSuperset(of: ["store-flusher", "flush-watchdog", "checkpointer"]) { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(names.isSuperset(of: ["store-flusher", "flush-watchdog", "checkpointer"]), "threads: \(names.sorted())")
    }

    @Test("a staged record is readable before its flush, on disk only after it, and acknowledged only then")
    func stagedUntilTheFlush() async throws {
        let dir = TempDirectory()
        let store = try openStore(testConfiguration(dir.path, mode: .sync, segmentSize: 1 << 20))
        defer { store.shutdown() }
        store.flushService.holdFlushes(true)
        let outcomes = Outcomes()
        let bodies = (0..<20).map { i in [UInt8](repeating: UInt8(0xA0 + i), count: 300 + i) }
        for body in bodies { store.append(try store.encode(message(body: body))) { outcomes.add($0) } }
        try await Task.sleep(for: .milliseconds(100))
        #expect(outcomes.all.isEmpty, "acknowledged before any fdatasync")
        // Readable from the stage, with every check a read makes (CRCs, offsets)...
        #expect(try store.allRecords().map(\.body) == bodies)
        // ...but not served to consumers before it is on disk.
        #expect(try store.messages(topic: "TopicA", queueId: 0, from: 0, maxCount: 50).messages.isEmpty)
        // Not in the files yet: the segment holds prepared zeros where the records go.
        let disk = try bytesOnDisk(dir.path)
        #expect(!disk.contains(0xA0 + 19))

        store.flushService.holdFlushes(false)
        #expect(await eventually { outcomes.all.count == bodies.count })
        #expect(outcomes.succeeded.count == bodies.count)
        #expect(store.commitLogFlushedOffset >= outcomes.succeeded.map { $0.physicalOffset + Int64($0.wroteBytes) }.max()!)
        let written = try bytesOnDisk(dir.path)
        for body in bodies { #expect(written.firstRange(of: body) != nil) }
        // Once written, reads come from the file and still match.
        #expect(try store.messages(topic: "TopicA", queueId: 0, from: 0, maxCount: 50).messages.map(\.body) == bodies)
    }

    @Test("records staged across segment rolls read back, and survive a restart, byte for byte")
    func stagedAcrossSegments() async throws {
        let dir = TempDirectory()
        var rng = SplitMix64(seed: 7)
        let bodies = (0..<60).map { i in randomBytes(3000 + i * 37, &rng) }
        do {
            let store = try openStore(testConfiguration(dir.path, mode: .sync, segmentSize: 64 * 1024))
            store.flushService.holdFlushes(true)
            let outcomes = Outcomes()
            for (i, body) in bodies.enumerated() {
                store.append(try store.encode(message(queue: Int32(i % 3), body: body))) { outcomes.add($0) }
            }
            #expect(store.commitLog.segmentCount > 2)
            #expect(try store.allRecords().map(\.body) == bodies)
            store.flushService.holdFlushes(false)
            #expect(await eventually { outcomes.all.count == bodies.count })
            #expect(outcomes.succeeded.count == bodies.count)
            for queue in 0..<3 {
                let expected = bodies.enumerated().filter { $0.offset % 3 == queue }.map(\.element)
                #expect(try store.messages(topic: "TopicA", queueId: Int32(queue), from: 0, maxCount: 100).messages.map(\.body) == expected)
            }
            store.shutdown()
        }
        let reopened = try openStore(testConfiguration(dir.path, mode: .sync, segmentSize: 64 * 1024))
        defer { reopened.shutdown() }
        #expect(try reopened.allRecords().map(\.body) == bodies)
    }

    @Test("a crash loses only staged records nobody was told were stored; appends go on after the restart")
    func crashLosesOnlyUnacknowledged() async throws {
        let dir = TempDirectory()
        let config = testConfiguration(dir.path, mode: .sync, segmentSize: 1 << 20)
        let acknowledged: [[UInt8]] = (0..<5).map { [UInt8](repeating: UInt8($0 + 1), count: 700) }
        do {
            let store = try openStore(config)
            for body in acknowledged { _ = try await store.append(message(body: body)) }
            store.flushService.holdFlushes(true)
            let outcomes = Outcomes()
            for i in 0..<4 { store.append(try store.encode(message(body: [UInt8](repeating: 0xEE, count: 500 + i)))) { outcomes.add($0) } }
            #expect(try store.allRecords().count == 9)
            // Consumers see only what is on disk: nothing they read can vanish in the crash.
            let visible = try store.messages(topic: "TopicA", queueId: 0, from: 0, maxCount: 20)
            #expect(visible.messages.map(\.body) == acknowledged && visible.nextOffset == 5)
            store.abandonForTesting()  // the process dies: its staged bytes with it
            // Waiters are failed, never told "stored".
            #expect(outcomes.all.count == 4 && outcomes.succeeded.isEmpty)
        }
        let store = try openStore(config)
        defer { store.shutdown() }
        #expect(try store.allRecords().map(\.body) == acknowledged)
        #expect(store.maxOffset(topic: "TopicA", queueId: 0) == 5)
        // The log goes on from the recovered end (mid-page): earlier records are not zeroed.
        let later = [UInt8](repeating: 0x77, count: 900)
        _ = try await store.append(message(body: later))
        #expect(try store.allRecords().map(\.body) == acknowledged + [later])
        #expect(try store.messages(topic: "TopicA", queueId: 0, from: 0, maxCount: 20).messages.map(\.body) == acknowledged + [later])
    }

    @Test("past the backlog limit a sync append is refused before anything is stored, and works again once the disk catches up")
    func backlogLimitRefusesAppends() async throws {
        let dir = TempDirectory()
        let store = try openStoreWithStuckDisk(dir.path, backlogLimit: 4096)
        defer { store.shutdown() }
        let outcomes = Outcomes()
        for i in 0..<6 { store.append(try store.encode(message(body: [UInt8](repeating: UInt8(i), count: 1000)))) { outcomes.add($0) } }
        // Four records (~1.1 KiB each) fit; the rest are refused at once.
        let refused = outcomes.all.filter { if case .failure(.flushBacklog) = $0 { return true } else { return false } }
        #expect(refused.count == 3 && outcomes.all.count == 3)
        #expect(store.maxOffset(topic: "TopicA", queueId: 0) == 3)
        store.flushService.holdFlushes(false)
        #expect(await eventually { outcomes.succeeded.count == 3 })
        _ = try await store.append(message(body: [9]))
        #expect(try store.messages(topic: "TopicA", queueId: 0, from: 0, maxCount: 10).messages.map(\.body.count) == [1000, 1000, 1000, 1])
    }

    @Test("after a failed fdatasync nothing counts as flushed again until a restart, which recovers")
    func failedSyncIsSticky() async throws {
        let dir = TempDirectory()
        let config = testConfiguration(dir.path, mode: .sync, segmentSize: 1 << 20)
        do {
            let store = try openStore(config)
            _ = try await store.append(message(body: [1]))
            store.commitLog.failNextSyncForTesting = true
            await #expect(throws: StoreError.self) { try await store.append(message(body: [2])) }
            // The disk is fine again, but a later fdatasync could succeed over lost write-back: refused.
            await #expect(throws: StoreError.self) { try await store.append(message(body: [3])) }
            store.shutdown()
        }
        let store = try openStore(config)
        defer { store.shutdown() }
        #expect(try store.allRecords().first?.body == [1])
        _ = try await store.append(message(body: [4]))
        #expect(try store.allRecords().last?.body == [4])
    }

    @Test("a record staged again at the offset of one whose append failed replaces it, in reads and in the file")
    func restagingReplacesTheFailedRecord() throws {
        let dir = TempDirectory()
        let file = try StoreFile(path: dir.path + "/segment")
        try file.truncate(to: 4096)
        let segment = CommitLogSegment(start: 8192, size: 4096, file: file)
        let stage = StagedWrites(limit: 1 << 20)
        stage.reset(at: 8192)
        func add(_ bytes: [UInt8], at offset: Int64) throws {
            try bytes.withUnsafeBytes { raw in try stage.add(raw, segment: segment, at: offset) }
        }
        try add([1, 1, 1, 1], at: 8192)
        try add([UInt8](repeating: 2, count: 8), at: 8196)  // its append fails after staging: the log still ends at 8196
        try add([3, 3, 3, 3], at: 8196)
        #expect(try stage.read(at: 8196, count: 4, file: file, fileOffset: 4) == [3, 3, 3, 3])
        #expect(try stage.read(at: 8192, count: 8, file: file, fileOffset: 0) == [1, 1, 1, 1, 3, 3, 3, 3])
        try stage.writeOut()
        // Nothing of the failed record is written past the new one either.
        #expect(try file.read(count: 12, at: 0) == [1, 1, 1, 1, 3, 3, 3, 3, 0, 0, 0, 0])
        #expect(try stage.read(at: 8192, count: 8, file: file, fileOffset: 0) == nil, "written out: read from the file")
    }

    @Test("append(_:completion:) completes at once with async flush, and with refusals")
    func completionInBothModes() throws {
        let dir = TempDirectory()
        let store = try openStore(testConfiguration(dir.path))
        defer { store.shutdown() }
        let outcomes = Outcomes()
        store.append(try store.encode(message(body: [1, 2, 3]))) { outcomes.add($0) }
        #expect(outcomes.succeeded.count == 1, "async flush: done once written, on the calling thread")
        let tooLarge = [UInt8](repeating: 1, count: 40 * 1024)
        store.append(try store.encode(message(body: tooLarge))) { outcomes.add($0) }
        #expect(outcomes.all.count == 2)
        if case .failure(.messageTooLarge) = outcomes.all.last {} else { Issue.record("expected messageTooLarge, got \(String(describing: outcomes.all.last))") }
    }
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes.
private func eventually(timeout: Duration = .seconds(5), _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}
