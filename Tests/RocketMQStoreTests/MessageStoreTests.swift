import Atomics
import Foundation
import Synchronization
import Testing
@testable import RocketMQStore

@Suite struct MessageStoreTests {
    @Test func appendsReadBackByQueueAndPhysicalOffset() async throws {
        let dir = TempDirectory()
        let store = try openStore(testConfiguration(dir.path))
        defer { store.shutdown() }
        var rng = SplitMix64(seed: 1)
        var sent = [(MessageToAppend, AppendResult)]()
        for i in 0..<200 {
            let m = message("T\(i % 2)", queue: Int32(i % 3), body: randomBytes(Int.random(in: 0...2000, using: &rng), &rng),
                            tag: "tag\(i % 4)", keys: "k\(i) shared", uniq: "U\(i)", extra: ["user": "\(i)"])
            sent.append((m, try await store.append(m)))
        }
        for (m, r) in sent {
            let got = try store.message(atPhysicalOffset: r.physicalOffset)
            #expect(got.body == m.body)
            #expect(got.properties == m.properties)
            #expect(got.queueOffset == r.queueOffset)
            #expect(got.msgId == r.msgId)
            #expect(try store.message(msgId: r.msgId).physicalOffset == r.physicalOffset)
            #expect(got.storeTimestamp == r.storeTimestamp)
            #expect(got.flags == 7 && got.reconsumeTimes == 2 && got.preparedTransactionOffset == 99 && got.bornHost == "192.168.1.2:5555")
        }
        for topic in ["T0", "T1"] {
            for q in Int32(0)..<3 {
                let expected = sent.filter { $0.0.topic == topic && $0.0.queueId == q }
                let read = try store.messages(topic: topic, queueId: q, from: 0, maxCount: 1000)
                #expect(read.messages.map(\.body) == expected.map(\.0.body))
                #expect(read.maxOffset == Int64(expected.count))
                #expect(read.nextOffset == Int64(expected.count))
                #expect(store.maxOffset(topic: topic, queueId: q) == Int64(expected.count))
                #expect(store.minOffset(topic: topic, queueId: q) == 0)
            }
        }
        #expect(store.topics() == ["T0", "T1"])
        #expect(store.queueIDs().count == 6)
        // maxCount and maxBytes bound a read; at least one message comes back.
        #expect(try store.messages(topic: "T0", queueId: 0, from: 0, maxCount: 5).messages.count == 5)
        #expect(try store.messages(topic: "T0", queueId: 0, from: 0, maxCount: 100, maxBytes: 1).messages.count == 1)
        #expect(try store.messages(topic: "nope", queueId: 0, from: 0).messages.isEmpty)
        #expect(throws: StoreError.self) { try store.message(msgId: "not-an-id") }
        #expect(throws: StoreError.self) { try store.message(msgId: MessageID.make(storeHost: "10.9.9.9:1", physicalOffset: 0)) }
        // Ids of this host crafted with offsets at the edges of Int64 (a client's EndTransaction
        // id, an admin's message lookup) are refused; `offset + size` used to trap on them.
        for offset in [Int64.max, Int64.max - 3, Int64.min, -1] {
            #expect(throws: StoreError.self) { try store.message(msgId: MessageID.make(storeHost: store.configuration.storeHost, physicalOffset: offset)) }
        }
        #expect(ConsumeQueueEntry(physicalOffset: .max - 3, size: 100, tagsHash: 0).recordEnd == .max)
        #expect(ConsumeQueueEntry(physicalOffset: 1000, size: 100, tagsHash: 0).recordEnd == 1100)
        try store.verifyConsistency()
    }

    /// A run appended in order is written before it waits (one flush covers it); a refused
    /// message ends it, the ones after it not written: they would follow a gap.
    @Test(arguments: [FlushMode.sync, .async])
    func anInOrderRunStopsAtItsFirstRefusal(mode: FlushMode) async throws {
        let dir = TempDirectory()
        let store = try openStore(testConfiguration(dir.path, mode: mode))
        defer { store.shutdown() }
        // The third is larger than the store takes (32 KiB here): refused when written.
        let bodies = [[0], [1], [UInt8](repeating: 2, count: 40_000), [3], [4]] as [[UInt8]]
        let encoded = try bodies.map { try store.encode(message("T", body: $0)) }
        let results: [Result<AppendResult, StoreError>] = await withCheckedContinuation { continuation in
            let gathered = Mutex<[Int: Result<AppendResult, StoreError>]>([:])
            store.append(inOrder: encoded, onWritten: { _, _ in }) { index, outcome in
                let all = gathered.withLock { $0[index] = outcome; return $0.count == 5 ? $0 : nil }
                if let all { continuation.resume(returning: (0..<5).map { all[$0]! }) }
            }
        }
        #expect(results.prefix(2).map { (try? $0.get())?.queueOffset } == [0, 1])
        for result in results.dropFirst(2) {
            #expect(throws: StoreError.self) { try result.get() }
        }
        #expect(store.maxOffset(topic: "T", queueId: 0) == 2, "nothing written past the refusal")
    }

    /// An offset id names the host that stored the record: found after the store's address
    /// changed (a restart on another port), and refused with another host or a shifted offset.
    @Test func offsetIdsNameTheRecordsStoreHost() async throws {
        let dir = TempDirectory()
        var config = testConfiguration(dir.path)
        config.storeHost = "10.0.0.1:10911"
        var sent: [AppendResult] = []
        do {
            let store = try openStore(config)
            for i in 0..<3 { sent.append(try await store.append(message("T", body: [UInt8(i)]))) }
            store.shutdown()
        }
        config.storeHost = "10.0.0.2:20911"
        let store = try openStore(config)
        defer { store.shutdown() }
        let later = try await store.append(message("T", body: [9]))
        for result in sent + [later] {
            #expect(try store.message(msgId: result.msgId).body == store.message(atPhysicalOffset: result.physicalOffset).body)
        }
        #expect(sent[0].msgId != MessageID.make(storeHost: "10.0.0.2:20911", physicalOffset: sent[0].physicalOffset))
        #expect(throws: StoreError.self) { try store.message(msgId: MessageID.make(storeHost: "10.0.0.2:20911", physicalOffset: sent[1].physicalOffset)) }
        #expect(throws: StoreError.self) { try store.message(msgId: MessageID.make(storeHost: "10.0.0.1:10911", physicalOffset: sent[1].physicalOffset + 1)) }
        #expect(try store.message(msgId: sent[1].msgId.lowercased()).physicalOffset == sent[1].physicalOffset)
    }

    @Test func segmentsRollOverAtExactBoundaries() async throws {
        let dir = TempDirectory()
        let segment: Int64 = 4096
        let store = try openStore(testConfiguration(dir.path, segmentSize: segment))
        defer { store.shutdown() }
        let probe = try RecordCodec.encode(message(body: []), storeHost: store.configuration.storeHost).count
        // Two records that fill the first segment exactly.
        let first = try await store.append(message(body: [UInt8](repeating: 1, count: 1000)))
        let fill = Int(segment) - Int(first.wroteBytes) - probe
        let second = try await store.append(message(body: [UInt8](repeating: 2, count: fill)))
        #expect(second.physicalOffset + Int64(second.wroteBytes) == segment)
        let third = try await store.append(message(body: [UInt8](repeating: 3, count: 500)))
        #expect(third.physicalOffset == segment, "a record after an exact fill starts the next segment")
        // A record that would leave 1...7 bytes (too few for an end marker) rolls over instead.
        let tight = Int(segment) - Int(third.wroteBytes) - probe - 4
        let fourth = try await store.append(message(body: [UInt8](repeating: 4, count: tight)))
        #expect(fourth.physicalOffset == 2 * segment)
        // One that leaves exactly an end marker's 8 bytes stays; the next rolls over.
        let fifth = try await store.append(message(body: [UInt8](repeating: 5, count: Int(segment) - Int(fourth.wroteBytes) - probe - 8)))
        #expect(fifth.physicalOffset + Int64(fifth.wroteBytes) == 3 * segment - 8)
        let sixth = try await store.append(message(body: [6]))
        #expect(sixth.physicalOffset == 3 * segment)
        // A record that does not fit leaves an end-of-segment marker.
        _ = try await store.append(message(body: [UInt8](repeating: 7, count: 3000)))
        let eighth = try await store.append(message(body: [UInt8](repeating: 8, count: 2000)))
        #expect(eighth.physicalOffset == 4 * segment)
        #expect(store.commitLog.segmentCount == 5)
        let bodies = try store.messages(topic: "TopicA", queueId: 0, from: 0, maxCount: 100).messages.map { $0.body.first }
        #expect(bodies == [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(throws: StoreError.self) { try store.message(atPhysicalOffset: 3 * segment - 10) }
        try store.verifyConsistency()
        await #expect(throws: StoreError.messageTooLarge(size: probe + 40_000, limit: 32 * 1024)) {
            try await store.append(message(body: [UInt8](repeating: 0, count: 40_000)))
        }
    }

    @Test func tagFilterUsesHashThenTag() async throws {
        let dir = TempDirectory()
        let store = try openStore(testConfiguration(dir.path))
        defer { store.shutdown() }
        for i in 0..<30 { _ = try await store.append(message(body: [UInt8(i)], tag: ["a", "b", "c"][i % 3])) }
        _ = try await store.append(message(body: [99]))
        let onlyA = try store.messages(topic: "TopicA", queueId: 0, from: 0, maxCount: 100, tagFilter: ["a"])
        #expect(onlyA.messages.map { $0.body[0] } == stride(from: 0, to: 30, by: 3).map { UInt8($0) })
        #expect(onlyA.nextOffset == 31)
        let bc = try store.messages(topic: "TopicA", queueId: 0, from: 10, maxCount: 3, tagFilter: ["b", "c"])
        #expect(bc.messages.map { $0.body[0] } == [10, 11, 13])
        #expect(bc.nextOffset == 14)
        let all = try store.messages(topic: "TopicA", queueId: 0, from: 0, maxCount: 100)
        #expect(all.messages.count == 31)
    }

    @Test func indexFindsKeysDespiteCollisionsAndTimeRanges() async throws {
        let dir = TempDirectory()
        var config = testConfiguration(dir.path)
        config.indexSlots = 1          // every key collides in one chain
        config.indexEntries = 100      // and files roll over
        let store = try openStore(config)
        defer { store.shutdown() }
        var results = [AppendResult]()
        for i in 0..<150 {
            results.append(try await store.append(message(i % 2 == 0 ? "A" : "B", body: [UInt8(i % 256)], keys: "key\(i % 10) all", uniq: "U\(i)")))
            if i == 74 { try await Task.sleep(for: .milliseconds(30)) }
        }
        #expect(FileSystem.list(dir.path + "/index").count >= 3)
        for k in 0..<10 {
            let topic = k % 2 == 0 ? "A" : "B"
            let found = store.messages(key: "key\(k)", topic: topic, maxCount: 100)
            #expect(Set(found.map(\.physicalOffset)) == Set((0..<150).filter { $0 % 10 == k }.map { results[$0].physicalOffset }))
            #expect(store.messages(key: "key\(k)", topic: topic == "A" ? "B" : "A").isEmpty, "a key is scoped to its topic")
        }
        #expect(store.messages(key: "all", topic: "A", maxCount: 10).count == 10)
        #expect(store.messages(key: "missing", topic: "A").isEmpty)
        for i in [0, 77, 149] { #expect(store.message(uniqueId: "U\(i)")?.physicalOffset == results[i].physicalOffset) }
        #expect(store.message(uniqueId: "U-none") == nil)
        // Time range: only the messages stored after the pause.
        let cut = results[75].storeTimestamp
        let late = store.messages(key: "all", topic: "A", from: cut, to: .max, maxCount: 1000)
        #expect(Set(late.map(\.physicalOffset)) == Set((75..<150).filter { $0 % 2 == 0 }.map { results[$0].physicalOffset }))
        let early = store.messages(key: "all", topic: "A", from: 0, to: cut - 1, maxCount: 1000)
        #expect(Set(early.map(\.physicalOffset)) == Set((0..<75).filter { $0 % 2 == 0 }.map { results[$0].physicalOffset }))
    }

    @Test func queueOffsetForTimestampBinarySearches() async throws {
        let dir = TempDirectory()
        let store = try openStore(testConfiguration(dir.path))
        defer { store.shutdown() }
        var stamps = [Int64]()
        for i in 0..<40 {
            stamps.append(try await store.append(message(body: [UInt8(i)])).storeTimestamp)
            if i % 8 == 7 { try await Task.sleep(for: .milliseconds(5)) }
        }
        for probe in Set(stamps + [stamps[0] - 1, stamps[39] + 1] + stamps.map { $0 + 1 }) {
            let expected = Int64(stamps.firstIndex { $0 >= probe } ?? 40)
            #expect(try store.queueOffset(topic: "TopicA", queueId: 0, forTimestamp: probe) == expected)
        }
        #expect(try store.queueOffset(topic: "none", queueId: 0, forTimestamp: 1) == 0)
    }

    @Test func reopensAfterCleanShutdownAndContinuesOffsets() async throws {
        let dir = TempDirectory()
        let config = testConfiguration(dir.path, segmentSize: 8192)
        var store = try openStore(config)
        for i in 0..<50 { _ = try await store.append(message(body: [UInt8](repeating: UInt8(i), count: 300), keys: "k\(i)")) }
        store.shutdown()
        let checkpoint = try #require(try Checkpoint.load(dir.path + "/checkpoint"))
        #expect(checkpoint.cleanShutdown)
        store = try openStore(config)
        #expect(store.maxOffset(topic: "TopicA", queueId: 0) == 50)
        let next = try await store.append(message(body: [1]))
        #expect(next.queueOffset == 50)
        try store.verifyConsistency()
        store.shutdown()
    }

    /// IndexFiles are synced less often than the checkpoint is written (`indexSyncInterval`):
    /// the checkpoint's safe offset must stay at what the last index sync covered, so that
    /// recovery after an OS crash starts early enough to re-index what the index may have lost.
    /// The ConsumeQueues are synced with the index only: a sync in between (one disk cache
    /// flush per queue) could not move the safe offset.
    /// (A process crash keeps the page cache, so the reopened store below finds every key
    /// either way; it checks that the slower sync costs no key and adds no duplicate.)
    @Test func theCheckpointStaysAtTheLastIndexSync() async throws {
        let dir = TempDirectory()
        var config = testConfiguration(dir.path, segmentSize: 1 << 20)
        config.indexSyncInterval = .seconds(3600)
        config.checkpointInterval = .seconds(3600)  // only this test writes checkpoints
        var store = try openStore(config)
        func flushed(_ end: Int64) async throws -> Bool {
            let until = ContinuousClock.now + .seconds(10)
            while store.commitLogFlushedOffset < end, ContinuousClock.now < until { try await Task.sleep(for: .milliseconds(10)) }
            return store.commitLogFlushedOffset >= end
        }
        for i in 0..<20 { _ = try await store.append(message(body: [UInt8(i)], keys: "k\(i)")) }
        let synced = store.commitLogMaxOffset
        #expect(try await flushed(synced))
        try store.writeCheckpoint(clean: false, syncIndex: true)
        #expect(try Checkpoint.load(dir.path + "/checkpoint")?.safeOffset == synced)

        for i in 20..<40 { _ = try await store.append(message(body: [UInt8(i)], keys: "k\(i)")) }
        let end = store.commitLogMaxOffset
        #expect(try await flushed(end))
        try store.writeCheckpoint(clean: false)  // no index sync due: nothing synced, the safe offset stays
        #expect(try Checkpoint.load(dir.path + "/checkpoint")?.safeOffset == synced)
        #expect(store.allQueues().map(\.syncs) == [1], "a ConsumeQueue synced though the safe offset could not move")
        try store.writeCheckpoint(clean: false, syncIndex: true)
        #expect(try Checkpoint.load(dir.path + "/checkpoint")?.safeOffset == end)
        #expect(store.allQueues().map(\.syncs) == [2])

        for i in 40..<60 { _ = try await store.append(message(body: [UInt8(i)], keys: "k\(i)")) }
        store.abandonForTesting()
        store = try openStore(config)
        defer { store.shutdown() }
        for i in 0..<60 {
            #expect(store.messages(key: "k\(i)", topic: "TopicA").map(\.body) == [[UInt8(i)]], "key k\(i)")
        }
        try store.verifyConsistency()
    }

    /// Every IndexFile written since the last sync is synced, also one that filled up and was
    /// followed by a new one in between.
    @Test func anIndexSyncCoversEveryFileWrittenSinceTheLast() async throws {
        let dir = TempDirectory()
        var config = testConfiguration(dir.path, segmentSize: 1 << 20)
        config.indexEntries = 16  // a new IndexFile every few messages
        config.checkpointInterval = .seconds(3600)
        let store = try openStore(config)
        defer { store.shutdown() }
        try store.index.sync()
        for i in 0..<40 { _ = try await store.append(message(body: [UInt8(i)], keys: "k\(i)")) }
        let written = store.index.unsyncedFileCount
        // More than the two newest files (all an index sync used to cover).
        #expect(written >= 3, "the appends should have filled several IndexFiles")
        try store.index.sync()
        #expect(store.index.unsyncedFileCount == 0)
        _ = try await store.append(message(body: [1], keys: "again"))
        #expect(store.index.unsyncedFileCount == 1)
    }

    /// The mapped writer prepares the pages ahead of it by writing zeros, a stretch at a time.
    /// After a restart (here a crash) the write position is inside a page that holds earlier
    /// records: they must survive the writes that follow, across several stretches and a
    /// segment roll.
    @Test func appendsAfterRestartingMidPageKeepEveryEarlierRecord() async throws {
        let dir = TempDirectory()
        let config = testConfiguration(dir.path, segmentSize: 1 << 20)
        var rng = SplitMix64(seed: 42)
        let bodies = (0..<900).map { i in [UInt8](repeating: UInt8(i % 251), count: Int.random(in: 1...3000, using: &rng)) }
        var store = try openStore(config)
        for body in bodies[..<300] { _ = try await store.append(message(body: body)) }
        store.abandonForTesting()
        store = try openStore(config)
        defer { store.shutdown() }
        #expect(store.commitLogMaxOffset % 4096 != 0, "the restart should resume inside a page")
        for body in bodies[300...] { _ = try await store.append(message(body: body)) }
        var read: [[UInt8]] = []
        while read.count < bodies.count {
            let batch = try store.messages(topic: "TopicA", queueId: 0, from: Int64(read.count), maxCount: 64).messages
            if batch.isEmpty { break }
            read += batch.map(\.body)
        }
        #expect(read.count == bodies.count)
        #expect(read == bodies, "a record was damaged")
        _ = try store.verifyConsistency()
    }

    @Test func secondStoreOnSameDirectoryGetsLockError() throws {
        let dir = TempDirectory()
        let store = try openStore(testConfiguration(dir.path))
        #expect(throws: StoreError.lockHeld(path: dir.path + "/lock", pid: getpid())) {
            _ = try openStore(testConfiguration(dir.path))
        }
        store.shutdown()
        let again = try openStore(testConfiguration(dir.path))
        again.shutdown()
    }

    @Test func syncFlushGroupsConcurrentAppendsIntoFewFsyncs() async throws {
        let dir = TempDirectory()
        let store = try openStore(testConfiguration(dir.path, mode: .sync, segmentSize: 1 << 20))
        defer { store.shutdown() }
        // All 64 appends are written and waiting before the flusher may run (on a busy machine
        // they would otherwise trickle in one per fdatasync), then one group covers them.
        store.flushService.holdFlushes(true)
        let appends = Task {
            try await withThrowingTaskGroup(of: AppendResult.self) { group in
                for i in 0..<64 { group.addTask { try await store.append(message(queue: Int32(i % 4), body: [UInt8(i)])) } }
                return try await group.reduce(into: [AppendResult]()) { $0.append($1) }
            }
        }
        let until = ContinuousClock.now + .seconds(10)
        while store.flushService.waitingAppends < 64, ContinuousClock.now < until { try await Task.sleep(for: .milliseconds(5)) }
        #expect(store.flushService.waitingAppends == 64)
        #expect(store.commitLogFlushedOffset < store.commitLogMaxOffset, "nothing may be synced while flushes are held")
        let before = store.flushStatistics
        let written = store.commitLogMaxOffset
        store.flushService.holdFlushes(false)
        // The first round after the release syncs everything written: one fdatasync for all 64.
        while store.flushService.rounds == before.flushes, ContinuousClock.now < until + .seconds(10) { try await Task.sleep(for: .milliseconds(1)) }
        #expect(store.commitLogFlushedOffset >= written, "group commit should cover all waiting appends with one fdatasync")
        let after = store.flushStatistics
        #expect(after.flushes - before.flushes == 1)
        #expect(after.groupCommitAppends - before.groupCommitAppends == 64, "the statistics count the group as 64 appends in one round")
        #expect(after.flushing > before.flushing)
        let results = try await appends.value
        #expect(results.count == 64)
        let maxEnd = results.map { $0.physicalOffset + Int64($0.wroteBytes) }.max() ?? 0
        #expect(maxEnd == written)
        #expect(store.commitLogFlushedOffset >= maxEnd, "acknowledged before the covering fdatasync")
    }

    @Test func syncFlushTimesOutInsteadOfSucceeding() async throws {
        let dir = TempDirectory()
        var config = testConfiguration(dir.path, mode: .sync)
        config.groupCommitTimeout = .milliseconds(100)
        let store = try openStore(config)
        defer { store.shutdown() }
        _ = try await store.append(message(body: [1]))
        store.flushService.holdFlushes(true)
        let started = ContinuousClock.now
        await #expect(throws: StoreError.self) { try await store.append(message(body: [2])) }
        #expect(ContinuousClock.now - started < .seconds(3))
        store.flushService.holdFlushes(false)
        _ = try await store.append(message(body: [3]))
    }

    /// New ConsumeQueue and IndexFile names reach the disk with the sync that lets the
    /// checkpoint pass their entries: their directories are synced then (a file system without
    /// a journal keeps a new name only so), and only when something new was created.
    @Test func theSyncAfterNewFilesSyncsTheirDirectories() async throws {
        let dir = TempDirectory()
        var config = testConfiguration(dir.path)
        config.checkpointInterval = .seconds(3600)  // only this test writes checkpoints
        config.indexSyncInterval = .seconds(3600)
        let store = try openStore(config)
        defer { store.shutdown() }
        try store.writeCheckpoint(clean: false, syncIndex: true)
        _ = try await store.append(message("T", queue: 3, body: [1], keys: "k1"))
        try store.writeCheckpoint(clean: false, syncIndex: true)
        let cq = dir.path + "/consumequeue"
        #expect(store.lastSyncedDirectories == [cq, cq + "/T", cq + "/T/3", dir.path + "/index"])
        _ = try await store.append(message("T", queue: 3, body: [2], keys: "k2"))
        try store.writeCheckpoint(clean: false, syncIndex: true)
        #expect(store.lastSyncedDirectories.isEmpty)
    }

    /// A queue's entries get their disk blocks reserved (`fallocate`) before the record goes
    /// in, so a disk that filled up refuses the message instead of killing the process with
    /// SIGBUS in a page fault (the end-to-end case: CrashTests' full-disk test). The files stay
    /// sparse: a one-message queue holds one page, a busy one less than twice its entries.
    @Test func consumeQueueBlocksAreReservedAheadOfTheirEntriesAndNoFurther() async throws {
        let dir = TempDirectory()
        var config = testConfiguration(dir.path)
        config.consumeQueueFileEntries = 300_000  // the default: a 6 MB file
        let store = try openStore(config)
        defer { store.shutdown() }
        _ = try await store.append(message("One", queue: 0, body: [1]))
        for i in 0..<1000 { _ = try await store.append(message("Busy", queue: 0, body: [UInt8(i % 256)])) }
        func allocated(_ topic: String) throws -> Int { try firstConsumeQueueFileAllocation(dir.path, topic: topic) }
        #expect(try allocated("One") == 4096)
        let written = 1000 * 20 / 4096 * 4096 + 4096  // the pages the 1,000 entries are on
        let busy = try allocated("Busy")
        #expect(busy > written && busy <= 2 * written, "\(busy) bytes allocated for 1,000 entries")
    }

    @Test func fullDiskRefusesAppendsButServesReads() async throws {
        let dir = TempDirectory()
        let usage = ManagedAtomic<Int>(50)
        var config = testConfiguration(dir.path)
        config.diskUsage = { _ in Double(usage.load(ordering: .relaxed)) / 100 }
        let store = try openStore(config)
        defer { store.shutdown() }
        _ = try await store.append(message(body: [1]))
        usage.store(95, ordering: .relaxed)
        store.runRetention()
        await #expect(throws: StoreError.diskFull(usedRatio: 0.95)) { try await store.append(message(body: [2])) }
        #expect(try store.messages(topic: "TopicA", queueId: 0, from: 0).messages.count == 1)
        usage.store(80, ordering: .relaxed)
        store.runRetention()
        _ = try await store.append(message(body: [3]))
        #expect(store.maxOffset(topic: "TopicA", queueId: 0) == 2)
    }

    @Test("disk use is df's Use%: blocks reserved for root count neither as used nor as free")
    func diskUsageMatchesDf() {
        // 252 GiB, 20 GiB used, 74 GiB available to non-root: a 158 GiB reserve.
        let gib: UInt64 = 1 << 18  // 4 KiB blocks
        #expect(abs(FileSystem.usedRatio(blocks: 252 * gib, free: 232 * gib, available: 74 * gib) - 20.0 / 94.0) < 1e-9)
        // The usual 5% reserve: 100 blocks, 60 used, 35 available.
        #expect(abs(FileSystem.usedRatio(blocks: 100, free: 40, available: 35) - 60.0 / 95.0) < 1e-9)
        #expect(FileSystem.usedRatio(blocks: 100, free: 5, available: 0) == 1)
        #expect(FileSystem.usedRatio(blocks: 0, free: 0, available: 0) == 0)
        // And the real file system's answer is a fraction.
        let live = FileSystem.usedRatio(of: FileManager.default.temporaryDirectory.path)
        #expect(live > 0 && live <= 1)
    }

    @Test func retentionDeletesOnlyExpiredSegmentsAndKeepsQueuesConsistent() async throws {
        let dir = TempDirectory()
        var config = testConfiguration(dir.path, segmentSize: 4096)
        config.deleteWhenHour = -1  // never by the clock: only when forced or the disk is past the clean ratio
        let usage = ManagedAtomic<Int>(10)
        config.diskUsage = { _ in Double(usage.load(ordering: .relaxed)) / 100 }
        let store = try openStore(config)
        defer { store.shutdown() }
        for i in 0..<40 { _ = try await store.append(message(queue: Int32(i % 2), body: [UInt8](repeating: UInt8(i), count: 900))) }
        let segments = store.commitLog.segmentList
        #expect(segments.count >= 5)
        #expect(store.runRetention() == 0, "nothing is due at 10% disk outside the delete hour")
        // Age the first three segments past the reserved time.
        let old = Date().addingTimeInterval(-80 * 3600)
        for s in segments.prefix(3) { try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: s.file.path) }
        usage.store(80, ordering: .relaxed)  // past the clean ratio: delete at once
        #expect(store.runRetention() == 3)
        #expect(store.commitLogMinOffset == segments[3].start)
        for q in Int32(0)..<2 {
            let read = try store.messages(topic: "TopicA", queueId: q, from: 0, maxCount: 100)
            #expect(read.minOffset > 0)
            #expect(read.messages.allSatisfy { $0.physicalOffset >= segments[3].start })
            #expect(read.messages.first?.queueOffset == read.minOffset)
        }
        #expect(throws: StoreError.self) { try store.message(atPhysicalOffset: 0) }
        // Even an aged active segment survives.
        for s in store.commitLog.segmentList { try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: s.file.path) }
        store.runRetention(force: true)
        #expect(store.commitLog.segmentCount == 1)
        _ = try await store.append(message(body: [1]))
        try store.verifyConsistency(checkIndex: false)
    }

    @Test("retention keeps the segment holding a record still needed and every later one: asked only when a segment expired, within maxRetentionHold, never on a full disk")
    func retentionKeepsWhatIsStillNeeded() async throws {
        let dir = TempDirectory()
        var config = testConfiguration(dir.path, segmentSize: 4096)
        config.deleteWhenHour = -1
        config.retentionCheckInterval = .seconds(3600)  // only the runs below
        config.maxRetentionHold = .seconds(100 * 3600)
        let usage = ManagedAtomic<Int>(10)
        config.diskUsage = { _ in Double(usage.load(ordering: .relaxed)) / 100 }
        let asked = ManagedAtomic<Int>(0)
        let needed = ManagedAtomic<Int64>(-1)  // -1: nothing needed
        config.recordsStillNeeded = { _ in
            asked.wrappingIncrement(ordering: .relaxed)
            let offset = needed.load(ordering: .relaxed)
            return offset < 0 ? nil : offset
        }
        let store = try openStore(config)
        defer { store.shutdown() }
        for i in 0..<60 { _ = try await store.append(message(body: [UInt8](repeating: UInt8(i), count: 900))) }
        let segments = store.commitLog.segmentList
        #expect(segments.count >= 10)
        func age(_ range: Range<Int>, hours: Double) throws {
            let date = Date().addingTimeInterval(-hours * 3600)
            for s in segments[range] { try FileManager.default.setAttributes([.modificationDate: date], ofItemAtPath: s.file.path) }
        }
        // Needed: a record in the middle of the fourth segment.
        needed.store(segments[3].start + 100, ordering: .relaxed)
        #expect(store.runRetention(force: true) == 0, "nothing expired")
        #expect(asked.load(ordering: .relaxed) == 0, "asked only when a segment could go")
        try age(0..<segments.count - 1, hours: 80)
        #expect(store.runRetention(force: true) == 3)
        #expect(asked.load(ordering: .relaxed) == 1)
        #expect(store.commitLogMinOffset == segments[3].start)
        #expect(store.runRetention(force: true) == 0, "the segment holding the needed record stays past its retention")
        // Held at most maxRetentionHold after its last write.
        try age(3..<5, hours: 120)
        #expect(store.runRetention(force: true) == 2)
        #expect(store.commitLogMinOffset == segments[5].start)
        // On a full disk nothing is held for them.
        needed.store(segments[6].start, ordering: .relaxed)
        #expect(store.runRetention(force: true) == 1, "the segment before the needed record goes")
        #expect(store.runRetention(force: true) == 0)
        usage.store(95, ordering: .relaxed)
        #expect(store.runRetention() == segments.count - 1 - 6, "past the hard limit every expired segment goes, held or not")
        #expect(store.commitLog.segmentCount == 1)
        try store.verifyConsistency(checkIndex: false)
    }

    @Test func rejectedMessagesLeaveNoTrace() async throws {
        let dir = TempDirectory()
        let store = try openStore(testConfiguration(dir.path))
        defer { store.shutdown() }
        _ = try await store.append(message(body: [1]))
        let end = store.commitLogMaxOffset
        for bad in [MessageToAppend(topic: "a/b", queueId: 0, body: [1]), MessageToAppend(topic: "t", queueId: -1, body: [1]),
                    MessageToAppend(topic: "..", queueId: 0, body: [1])] {
            await #expect(throws: StoreError.self) { try await store.append(bad) }
        }
        #expect(store.commitLogMaxOffset == end)
        #expect(try await store.append(message(body: [2])).queueOffset == 1)
        try store.verifyConsistency()
    }

    @Test func queueOffsetsSurviveRetentionOfEveryOldSegmentAndARestart() async throws {
        let dir = TempDirectory()
        var config = testConfiguration(dir.path, segmentSize: 4096)
        config.deleteWhenHour = -1
        var store = try openStore(config)
        // 64 entries = exactly one ConsumeQueue file (testConfiguration uses 64 per file).
        for _ in 0..<64 { _ = try await store.append(message(body: [UInt8](repeating: 1, count: 400))) }
        // Roll to a fresh segment holding only another queue's message.
        for _ in 0..<12 { _ = try await store.append(message("Other", body: [UInt8](repeating: 2, count: 400))) }
        let old = Date().addingTimeInterval(-100 * 3600)
        for s in store.commitLog.segmentList { try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: s.file.path) }
        store.runRetention(force: true)
        #expect(store.minOffset(topic: "TopicA", queueId: 0) == 64)
        #expect(store.maxOffset(topic: "TopicA", queueId: 0) == 64)
        store.shutdown()
        store = try openStore(config)
        defer { store.shutdown() }
        #expect(store.maxOffset(topic: "TopicA", queueId: 0) == 64, "queue offsets must not restart after retention")
        #expect(try await store.append(message(body: [3])).queueOffset == 64)
    }

    @Test func longPollWakesOnAppendAndTimesOut() async throws {
        let dir = TempDirectory()
        let store = try openStore(testConfiguration(dir.path))
        defer { store.shutdown() }
        let started = ContinuousClock.now
        #expect(await store.waitForNewMessages(topic: "TopicA", queueId: 0, after: 0, timeout: .milliseconds(50)) == false)
        #expect(ContinuousClock.now - started >= .milliseconds(45))
        async let woke = store.waitForNewMessages(topic: "TopicA", queueId: 0, after: 0, timeout: .seconds(10))
        try await Task.sleep(for: .milliseconds(20))
        let t0 = ContinuousClock.now
        _ = try await store.append(message(body: [1]))
        #expect(await woke == true)
        #expect(ContinuousClock.now - t0 < .seconds(5))
        #expect(await store.waitForNewMessages(topic: "TopicA", queueId: 0, after: 1, timeout: .milliseconds(30)) == false)
    }

    @Test func atomicFileReplacesWholeContent() throws {
        let dir = TempDirectory()
        let path = dir.path + "/topics.json"
        try AtomicFile.write(Array("{\"a\":1}".utf8), to: path)
        try AtomicFile.write(Array("{}".utf8), to: path)
        #expect(try AtomicFile.read(path) == Array("{}".utf8))
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp"))
        #expect(try AtomicFile.read(dir.path + "/absent") == nil)
    }

    @Test func aNewQueuesFirstEntryReadsNoPagesAheadIntoItsFile() async throws {
        // A ConsumeQueue file is 6 MB, mostly hole: the fault of its first write used to read
        // ahead (zero-fill) a whole window of pages, under the writer's lock.
        let dir = TempDirectory()
        var config = testConfiguration(dir.path)
        config.consumeQueueFileEntries = 300_000
        let store = try openStore(config)
        defer { store.shutdown() }
        _ = try await store.append(message("Fresh", queue: 0, body: [1]))
        let path = try #require(FileSystem.list(dir.path + "/consumequeue/Fresh/0").first.map { dir.path + "/consumequeue/Fresh/0/" + $0 })
        let file = try StoreFile(path: path, create: false)
        let size = Int(file.size)
        let mapped = try #require(mmap(nil, size, PROT_READ, MAP_SHARED, file.fd, 0).flatMap { $0 == MAP_FAILED ? nil : $0 })
        defer { munmap(mapped, size) }
        var resident = [UInt8](repeating: 0, count: (size + 4095) / 4096)
        #expect(mincore(mapped, size, &resident) == 0)
        let pages = resident.filter { $0 & 1 == 1 }.count
        #expect(pages >= 1 && pages <= 4, "\(pages) pages of the queue's file in the page cache after one entry")
    }
}

/// Drop-behind (`StoreConfiguration.pageCacheWindow`): flushed CommitLog pages further behind
/// than the window leave the page cache; nothing is lost, and recent pages stay.
@Suite struct PageCacheWindowTests {
    /// How many of the file's pages are in the page cache (`mincore` over a fresh mapping).
    func residentPages(_ path: String) throws -> Int {
        let fd = open(path, O_RDONLY)
        try #require(fd >= 0)
        defer { close(fd) }
        let size = Int(lseek(fd, 0, SEEK_END))
        let p = try #require(mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0))
        try #require(p != MAP_FAILED)
        defer { munmap(p, size) }
        var vector = [UInt8](repeating: 0, count: (size + 4095) / 4096)
        try #require(mincore(p, size, &vector) == 0)
        return vector.reduce(0) { $0 + Int($1 & 1) }
    }

    @Test(arguments: [FlushMode.async, .sync])
    func flushedPagesBehindTheWindowLeaveTheCache(mode: FlushMode) async throws {
        let dir = TempDirectory()
        var configuration = testConfiguration(dir.path, mode: mode, segmentSize: 256 << 10)
        configuration.pageCacheWindow = 256 << 10
        let store = try openStore(configuration)
        defer { store.shutdown() }
        var sent = [AppendResult]()
        let body = [UInt8](repeating: 0x5A, count: 2000)
        for i in 0..<1500 {  // about 3 MiB: a dozen segments
            sent.append(try await store.append(message("W", queue: 0, body: body, uniq: "U\(i)")))
        }
        // The async flusher syncs within its interval, and drops what is behind the window right
        // after it publishes the flushed position: wait for the drop, not just for the flush (a
        // check right after the flush raced the last drop and found segment 1 cached).
        let segments = store.commitLog.segmentList
        try #require(segments.count >= 10)
        let deadline = ContinuousClock.now + .seconds(10)
        var behind = [-1, -1]
        while ContinuousClock.now < deadline {
            behind = try segments.prefix(2).map { try residentPages($0.file.path) }
            if store.commitLogFlushedOffset == store.commitLogMaxOffset && behind == [0, 0] { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(store.commitLogFlushedOffset == store.commitLogMaxOffset)
        #expect(behind == [0, 0], "pages of the two oldest segments still cached 10 s after the appends")
        #expect(try residentPages(segments[segments.count - 1].file.path) > 0, "the newest segment was dropped")
        // Everything reads back (from disk where it was dropped).
        for (i, r) in sent.enumerated() where i % 7 == 0 || i == sent.count - 1 {
            let got = try store.message(atPhysicalOffset: r.physicalOffset)
            #expect(got.body == body && got.properties["UNIQ_KEY"] == "U\(i)")
        }
    }
}
