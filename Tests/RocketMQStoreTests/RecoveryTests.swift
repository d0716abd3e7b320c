import Foundation
import Testing
@testable import RocketMQStore

/// In-process crash simulations: the store is abandoned without a clean shutdown (as a
/// SIGKILL leaves it: page cache kept), files are damaged, and the store is reopened.
@Suite struct RecoveryTests {
    /// Appends `count` messages over 3 queues and abandons the store.
    func crashAfterAppending(_ dir: String, count: Int, segmentSize: Int64 = 8192) async throws -> [AppendResult] {
        var config = testConfiguration(dir, segmentSize: segmentSize)
        config.checkpointInterval = .seconds(3600)  // the tail stays "unsafe", as after a real crash
        let store = try openStore(config)
        var out = [AppendResult]()
        for i in 0..<count {
            out.append(try await store.append(message("T", queue: Int32(i % 3), body: [UInt8](repeating: UInt8(i % 256), count: 100 + i % 400),
                                                      tag: "t\(i % 2)", keys: "k\(i)", uniq: "U\(i)")))
        }
        store.abandonForTesting()
        return out
    }

    @Test func crashWithoutDamageKeepsEverything() async throws {
        let dir = TempDirectory()
        let sent = try await crashAfterAppending(dir.path, count: 120)
        let store = try openStore(testConfiguration(dir.path, segmentSize: 8192))
        defer { store.shutdown() }
        let records = try store.verifyConsistency()
        #expect(records.map(\.physicalOffset) == sent.map(\.physicalOffset))
        #expect(try await store.append(message("T", queue: 0, body: [1])).queueOffset == 40)
    }

    @Test func tornCommitLogTailIsTruncatedAndRedispatched() async throws {
        let dir = TempDirectory()
        let sent = try await crashAfterAppending(dir.path, count: 100)
        // Garble the middle of the last record.
        let last = try #require(sent.last)
        let segmentStart = last.physicalOffset / 8192 * 8192
        let file = try StoreFile(path: dir.path + "/commitlog/" + FileSystem.offsetName(segmentStart), create: false)
        try file.write([0xDE, 0xAD, 0xBE, 0xEF], at: last.physicalOffset - segmentStart + Int64(last.wroteBytes) / 2)
        let store = try openStore(testConfiguration(dir.path, segmentSize: 8192))
        defer { store.shutdown() }
        let records = try store.verifyConsistency()
        #expect(records.map(\.physicalOffset) == sent.dropLast().map(\.physicalOffset))
        #expect(store.commitLogMaxOffset == last.physicalOffset)
        #expect(store.message(uniqueId: "U99") == nil)
        #expect(store.messages(key: "k99", topic: "T").isEmpty)
        // The next append reuses the cut-off position and queue offset.
        let again = try await store.append(message("T", queue: Int32(99 % 3), body: [7], keys: "k99"))
        #expect(again.physicalOffset == last.physicalOffset)
        #expect(again.queueOffset == last.queueOffset)
        #expect(store.messages(key: "k99", topic: "T").map(\.body) == [[7]])
        try store.verifyConsistency()
    }

    /// Right after recovery (torn tail cut, the queue entries that pointed into it dropped),
    /// every queue entry is readable through every read API at once, and so is each new
    /// message the moment its entry is visible: consumers poll while producers resend.
    @Test func recoveredStoreServesEveryReadAtOnce() async throws {
        let dir = TempDirectory()
        let sent = try await crashAfterAppending(dir.path, count: 90)
        let last = try #require(sent.last)
        let segmentStart = last.physicalOffset / 8192 * 8192
        let file = try StoreFile(path: dir.path + "/commitlog/" + FileSystem.offsetName(segmentStart), create: false)
        try file.write([0xDE, 0xAD, 0xBE, 0xEF], at: last.physicalOffset - segmentStart + Int64(last.wroteBytes) / 2)
        let problems = Collected()
        var config = testConfiguration(dir.path, segmentSize: 8192)
        config.afterDispatchForTesting = { store in
            for id in store.queueIDs() {
                problems.add(store.problemsReading(id, at: store.maxOffset(topic: id.topic, queueId: id.queueId) - 1))
            }
        }
        let store = try openStore(config)
        defer { store.shutdown() }
        var entries = 0
        for id in store.queueIDs() {
            for offset in store.minOffset(topic: id.topic, queueId: id.queueId)..<store.maxOffset(topic: id.topic, queueId: id.queueId) {
                problems.add(store.problemsReading(id, at: offset))
                entries += 1
            }
        }
        #expect(entries == sent.count - 1)
        for i in 0..<30 {
            _ = try await store.append(message("T", queue: Int32(i % 3), body: [UInt8(i)], keys: "after\(i)", uniq: "A\(i)"))
        }
        #expect(problems.all.isEmpty, "\(problems.all.prefix(5))")
        try store.verifyConsistency()
    }

    @Test func truncatedSegmentFileIsRecovered() async throws {
        let dir = TempDirectory()
        let sent = try await crashAfterAppending(dir.path, count: 100)
        let last = try #require(sent.last)
        let segmentStart = last.physicalOffset / 8192 * 8192
        let file = try StoreFile(path: dir.path + "/commitlog/" + FileSystem.offsetName(segmentStart), create: false)
        let cut = last.physicalOffset - segmentStart - 10  // inside the second-to-last record
        try file.truncate(to: cut)
        let store = try openStore(testConfiguration(dir.path, segmentSize: 8192))
        defer { store.shutdown() }
        let records = try store.verifyConsistency()
        let kept = sent.filter { $0.physicalOffset + Int64($0.wroteBytes) <= segmentStart + cut }
        #expect(records.map(\.physicalOffset) == kept.map(\.physicalOffset))
    }

    @Test func garbageInLastConsumeQueueFileIsRepaired() async throws {
        let dir = TempDirectory()
        _ = try await crashAfterAppending(dir.path, count: 150)  // 50 per queue: files of 64 entries
        let cqFile = dir.path + "/consumequeue/T/1/" + FileSystem.offsetName(0)
        let file = try StoreFile(path: cqFile, create: false)
        var rng = SplitMix64(seed: 7)
        try file.write(randomBytes(20 * 15, &rng), at: 20 * 30)  // entries 30..<45 become garbage
        let store = try openStore(testConfiguration(dir.path, segmentSize: 8192))
        defer { store.shutdown() }
        try store.verifyConsistency()
        #expect(store.maxOffset(topic: "T", queueId: 1) == 50)
    }

    @Test func truncatedConsumeQueueFileIsRefilled() async throws {
        let dir = TempDirectory()
        _ = try await crashAfterAppending(dir.path, count: 150)
        for q in 0..<3 {
            let file = try StoreFile(path: dir.path + "/consumequeue/T/\(q)/" + FileSystem.offsetName(0), create: false)
            try file.truncate(to: Int64(20 * (5 + q * 7) + 3))  // torn mid-entry
        }
        let store = try openStore(testConfiguration(dir.path, segmentSize: 8192))
        defer { store.shutdown() }
        try store.verifyConsistency()
        for q in Int32(0)..<3 { #expect(store.maxOffset(topic: "T", queueId: q) == 50) }
    }

    @Test func zeroedConsumeQueueTailBelowTheCheckpointIsRefilled() async throws {
        let dir = TempDirectory()
        let config = testConfiguration(dir.path, segmentSize: 8192)
        var store = try openStore(config)
        for i in 0..<90 { _ = try await store.append(message("T", queue: Int32(i % 3), body: [UInt8](repeating: 1, count: 200))) }
        store.shutdown()  // clean: the checkpoint covers everything
        store = try openStore(config)
        for i in 0..<3 { _ = try await store.append(message("T", queue: Int32(i % 3), body: [2])) }
        store.abandonForTesting()
        // Zero (not truncate) entries 10..<31 of queue 0: a gap no size check can see.
        let file = try StoreFile(path: dir.path + "/consumequeue/T/0/" + FileSystem.offsetName(0), create: false)
        try file.write([UInt8](repeating: 0, count: 20 * 21), at: 20 * 10)
        store = try openStore(config)
        defer { store.shutdown() }
        // Zeros end the queue at 10; redo from the checkpoint finds queue offset 30 > 10: a gap, refilled.
        try store.verifyConsistency()
        #expect(store.maxOffset(topic: "T", queueId: 0) == 31)
    }

    @Test func garbageCheckpointMeansFullScanNotAFailedStart() async throws {
        let dir = TempDirectory()
        let sent = try await crashAfterAppending(dir.path, count: 60)
        let file = try StoreFile(path: dir.path + "/checkpoint", create: false)
        try file.write(Array("{not json".utf8), at: 0)
        let store = try openStore(testConfiguration(dir.path, segmentSize: 8192))
        defer { store.shutdown() }
        #expect(try store.verifyConsistency().count == sent.count)
    }

    @Test func tornIndexFileIsDiscardedAndRebuilt() async throws {
        let dir = TempDirectory()
        var config = testConfiguration(dir.path, segmentSize: 8192)
        config.indexEntries = 50  // several IndexFiles
        config.checkpointInterval = .seconds(3600)
        var store = try openStore(config)
        for i in 0..<120 { _ = try await store.append(message("T", queue: Int32(i % 3), body: [UInt8(i)], keys: "k\(i)", uniq: "U\(i)")) }
        store.shutdown()  // clean: recovery would not rescan anything by itself
        let files = FileSystem.list(dir.path + "/index")
        #expect(files.count >= 4)
        let victim = try StoreFile(path: dir.path + "/index/" + files[1], create: false)
        try victim.truncate(to: victim.size / 2)
        store = try openStore(config)
        defer { store.shutdown() }
        try store.verifyConsistency()  // every key and unique id is found again
        #expect(store.messages(key: "k30", topic: "T").map(\.body) == [[30]])
    }

    /// Recovery trims every ConsumeQueue's tail. Zeroing the whole tail wrote zeros over the
    /// file's holes, so each restart allocated every queue's whole file on disk (6 MB per queue
    /// at the default size; 48 GB for 1,000 topics × 8 queues).
    @Test func aRestartDoesNotAllocateTheConsumeQueuesHoles() async throws {
        let dir = TempDirectory()
        var config = testConfiguration(dir.path)
        config.consumeQueueFileEntries = 300_000  // the default: a 6 MB file
        var store = try openStore(config)
        for i in 0..<10 { _ = try await store.append(message("T", queue: 0, body: [UInt8(i)])) }
        store.shutdown()
        func allocated() throws -> Int { try firstConsumeQueueFileAllocation(dir.path, topic: "T") }
        let written = try allocated()
        try #require(written < 1 << 20, "the file system here keeps no holes: \(written) bytes")
        for _ in 0..<2 {
            store = try openStore(config)
            store.abandonForTesting()  // a crash: recovery trims the queues again
        }
        store = try openStore(config)
        defer { store.shutdown() }
        let afterRestarts = try allocated()
        #expect(afterRestarts < 1 << 20, "\(afterRestarts) bytes allocated for 10 entries")
        #expect(store.maxOffset(topic: "T", queueId: 0) == 10)
        #expect(try store.messages(topic: "T", queueId: 0, from: 0).messages.map(\.body) == (0..<10).map { [UInt8($0)] })
    }

    /// A clean shutdown synced every ConsumeQueue: the start after it syncs none again (each
    /// `msync` costs a disk cache flush: 7,000 queues took 44 s to open here). After a crash
    /// each queue is synced once, as what the page cache held may not be on disk.
    @Test func aCleanRestartDoesNotSyncEveryConsumeQueueAgain() async throws {
        let dir = TempDirectory()
        let config = testConfiguration(dir.path)
        var store = try openStore(config)
        for i in 0..<40 { _ = try await store.append(message("T\(i % 20)", queue: 0, body: [UInt8(i)])) }
        store.shutdown()
        store = try openStore(config)
        #expect(store.allQueues().count == 20)
        #expect(store.allQueues().map(\.syncs) == Array(repeating: 0, count: 20))
        store.abandonForTesting()
        store = try openStore(config)
        defer { store.shutdown() }
        #expect(store.allQueues().map(\.syncs) == Array(repeating: 1, count: 20))
        #expect(store.maxOffset(topic: "T7", queueId: 0) == 2)
    }

    /// After a power cut, an IndexFile's header may have reached the disk and the pages of its
    /// newest entries not (the kernel writes pages back in no particular order): the header
    /// then claims records whose keys are nowhere in the file.
    @Test func indexEntriesLostBehindAPersistedHeaderAreRebuilt() async throws {
        let dir = TempDirectory()
        var config = testConfiguration(dir.path, segmentSize: 8192)
        config.checkpointInterval = .seconds(3600)
        var store = try openStore(config)
        for i in 0..<40 { _ = try await store.append(message("T", queue: Int32(i % 3), body: [UInt8(i)], keys: "k\(i)", uniq: "U\(i)")) }
        try store.writeCheckpoint(clean: false, syncIndex: true)  // synced up to here
        let files = FileSystem.list(dir.path + "/index")
        try #require(files.count == 1)
        let path = dir.path + "/index/" + files[0]
        let synced = try #require(try AtomicFile.read(path))
        for i in 40..<80 { _ = try await store.append(message("T", queue: Int32(i % 3), body: [UInt8(i)], keys: "k\(i)", uniq: "U\(i)")) }
        store.abandonForTesting()
        // What the disk holds after the cut: the newest header, the slots and entries as synced.
        let file = try StoreFile(path: path, create: false)
        let header = try file.read(count: IndexFile.headerSize, at: 0)
        try file.write(header + synced[IndexFile.headerSize...], at: 0)
        store = try openStore(config)
        defer { store.shutdown() }
        #expect(store.messages(key: "k60", topic: "T").map(\.body) == [[60]])
        #expect(store.message(uniqueId: "U79")?.body == [79])
        #expect(store.messages(key: "k10", topic: "T").map(\.body) == [[10]], "a key indexed before the checkpoint")
        try store.verifyConsistency()
    }

    /// A SIGKILL can stop an IndexFile put between any two of its memory stores, and the page
    /// cache keeps those made before. Whichever store it stops at, recovery must find every
    /// key and unique id again: within one file, and when a record's keys straddle two files.
    @Test(arguments: [false, true])
    func indexPutKilledAfterAnyStoreLosesNoKey(keysStraddleTwoFiles: Bool) async throws {
        var crashPoint = 0
        while crashPoint < 100 {  // a put makes about twenty stores: the loop ends well before
            let dir = TempDirectory()
            var config = testConfiguration(dir.path)
            config.checkpointInterval = .seconds(3600)
            config.indexSlots = 2  // long chains: one broken link hides many keys
            // Five records fill ten entries; with eleven, the sixth record's keys straddle two files.
            config.indexEntries = keysStraddleTwoFiles ? 11 : 64
            var store = try openStore(config)
            for i in 0..<5 { _ = try await store.append(message("T", body: [UInt8(i)], keys: "k\(i)", uniq: "U\(i)")) }
            let countdown = store.index.simulateCrash(afterStores: crashPoint)
            _ = try await store.append(message("T", body: [5], keys: "k5", uniq: "U5"))
            store.abandonForTesting()
            store = try openStore(config)
            let problems = (Int64(0)..<6).flatMap { store.problemsReading(QueueID(topic: "T", queueId: 0), at: $0) }
            #expect(problems.isEmpty, "killed after \(crashPoint) index stores: \(problems)")
            try store.verifyConsistency()
            #expect(FileSystem.list(dir.path + "/index").count == (keysStraddleTwoFiles ? 2 : 1))
            store.shutdown()
            if countdown.remaining > 0 { break }  // the put finished first: every crash point is covered
            crashPoint += 1
        }
        #expect(crashPoint > 10 && crashPoint < 100)
    }

    @Test func missingCheckpointMeansFullScan() async throws {
        let dir = TempDirectory()
        let sent = try await crashAfterAppending(dir.path, count: 80)
        try FileSystem.remove(dir.path + "/checkpoint")
        try FileManager.default.removeItem(atPath: dir.path + "/consumequeue")
        try FileManager.default.removeItem(atPath: dir.path + "/index")
        let store = try openStore(testConfiguration(dir.path, segmentSize: 8192))
        defer { store.shutdown() }
        let records = try store.verifyConsistency()
        #expect(records.count == sent.count)
    }

    /// Damage below what the last checkpoint recorded as synced is not a torn tail: recovery
    /// refuses to cut acknowledged records away (it used to truncate there and delete every later
    /// segment) unless forced.
    @Test func damageBelowTheSyncedEndRefusesToOpenUnlessForced() async throws {
        let dir = TempDirectory()
        var sent = [AppendResult]()
        do {
            let store = try openStore(testConfiguration(dir.path, segmentSize: 8192))
            for i in 0..<150 {
                sent.append(try await store.append(message("T", queue: Int32(i % 3), body: [UInt8](repeating: UInt8(i % 256), count: 100 + i % 400), uniq: "U\(i)")))
            }
            store.shutdown()  // clean: the checkpoint records the whole log as synced
        }
        // A damaged ConsumeQueue makes recovery scan the log from low down...
        var rng = SplitMix64(seed: 7)
        try StoreFile(path: dir.path + "/consumequeue/T/1/" + FileSystem.offsetName(0), create: false)
            .write(randomBytes(20 * 15, &rng), at: 20 * 2)
        // ...and it meets a damaged record in the first segment (a bad block, say).
        let damaged = sent[5]
        try StoreFile(path: dir.path + "/commitlog/" + FileSystem.offsetName(0), create: false)
            .write([0xDE, 0xAD, 0xBE, 0xEF], at: damaged.physicalOffset + Int64(damaged.wroteBytes) / 2)
        for _ in 0..<2 {  // a refused start changes nothing: the next one refuses too
            let refusal = #expect(throws: StoreError.self) { try openStore(testConfiguration(dir.path, segmentSize: 8192)) }
            #expect(refusal?.description.contains("damaged record at CommitLog offset \(damaged.physicalOffset)") == true, "\(String(describing: refusal))")
        }
        // Nothing was cut: every segment is still there.
        let segments = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/commitlog").filter { !$0.hasPrefix(".") }
        #expect(Int64(segments.count) == (sent.last!.physicalOffset / 8192) + 1)
        // Forced, it opens with the records before the damaged one.
        var forced = testConfiguration(dir.path, segmentSize: 8192)
        forced.forceRecovery = true
        let store = try openStore(forced)
        defer { store.shutdown() }
        #expect(try store.verifyConsistency().map(\.physicalOffset) == sent.prefix(5).map(\.physicalOffset))
    }

    /// A ConsumeQueue entry that points at a sound record of another queue (as an old page a
    /// crash brought back could) is refused, not served as this queue's message.
    @Test func anEntryPointingAtAnotherQueuesRecordIsRefused() async throws {
        let dir = TempDirectory()
        let store = try openStore(testConfiguration(dir.path, segmentSize: 8192))
        defer { store.shutdown() }
        for i in 0..<4 { _ = try await store.append(message("T", queue: Int32(i % 2), body: Array("m\(i)".utf8))) }
        // Queue 0's entry 1 becomes a copy of queue 1's entry 0: same size and tag hash.
        let foreign = try StoreFile(path: dir.path + "/consumequeue/T/1/" + FileSystem.offsetName(0), create: false).read(count: 20, at: 0)
        try StoreFile(path: dir.path + "/consumequeue/T/0/" + FileSystem.offsetName(0), create: false).write(foreign, at: 20)
        #expect(try store.messages(topic: "T", queueId: 0, from: 0, maxCount: 1).messages.map(\.body) == [Array("m0".utf8)])
        #expect(throws: StoreError.self) { try store.messages(topic: "T", queueId: 0, from: 1, maxCount: 1) }
        #expect(try store.messages(topic: "T", queueId: 1, from: 0).messages.map(\.body) == [Array("m1".utf8), Array("m3".utf8)])
    }
}
