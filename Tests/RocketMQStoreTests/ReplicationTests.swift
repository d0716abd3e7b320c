import Foundation
import Synchronization
import Testing
@testable import RocketMQStore

/// A replica copies its master's log byte for byte through `readLog` / `appendReplicated`.
@Suite struct ReplicationTests {
    /// Copies everything `master` has beyond `replica`'s end, in chunks of at most `chunk` bytes.
    @discardableResult
    private func catchUp(_ replica: MessageStore, from master: MessageStore, chunk: Int = 3000) throws -> Int {
        var rounds = 0
        while rounds < 10_000 {
            let offset = replica.commitLogMaxOffset
            let bytes = try master.readLog(from: offset, maxBytes: chunk)
            if bytes.isEmpty { return rounds }
            let end = try replica.appendReplicated(bytes, at: offset)
            #expect(end == offset + Int64(bytes.count))
            rounds += 1
        }
        Issue.record("replication did not catch up")
        return rounds
    }

    @Test func aReplicaHoldsTheSameLogQueuesAndKeys() async throws {
        let masterDir = TempDirectory("master"), replicaDir = TempDirectory("replica")
        let segment: Int64 = 8192
        let master = try openStore(testConfiguration(masterDir.path, segmentSize: segment))
        var replica: MessageStore? = try openStore(testConfiguration(replicaDir.path, segmentSize: segment))
        replica?.isReplicaLog = true
        var rng = SplitMix64(seed: 7)
        var sent = [AppendResult]()
        for i in 0..<120 {
            let m = message("T\(i % 3)", queue: Int32(i % 2), body: randomBytes(Int.random(in: 1...1500, using: &rng), &rng),
                            tag: "tag\(i % 4)", keys: "k\(i)", uniq: "U\(i)")
            sent.append(try await master.append(m))
            if i % 17 == 0, let replica { try catchUp(replica, from: master, chunk: 1000) }
        }
        #expect(master.commitLogMaxOffset > 4 * segment, "the log spans several segments, so markers replicate too")
        try catchUp(#require(replica), from: master)
        let copy = try #require(replica)
        #expect(copy.commitLogMaxOffset == master.commitLogMaxOffset)
        #expect(try copy.readLog(from: 0, maxBytes: 1 << 20) == master.readLog(from: 0, maxBytes: 1 << 20))
        for id in master.queueIDs() {
            let a = try master.messages(topic: id.topic, queueId: id.queueId, from: 0, maxCount: 1000)
            let b = try copy.messages(topic: id.topic, queueId: id.queueId, from: 0, maxCount: 1000)
            #expect(a.messages.map(\.body) == b.messages.map(\.body))
            #expect(a.messages.map(\.queueOffset) == b.messages.map(\.queueOffset))
            #expect(a.messages.map(\.physicalOffset) == b.messages.map(\.physicalOffset))
        }
        #expect(copy.queueIDs() == master.queueIDs())
        #expect(copy.messages(key: "k42", topic: "T0").map(\.physicalOffset) == [sent[42].physicalOffset])
        try copy.verifyConsistency()

        // A replica refuses appends of its own, and records that do not continue its log.
        await #expect(throws: StoreError.replica) { try await copy.append(message(body: [1])) }
        let tail = try master.readLog(from: sent[100].physicalOffset, maxBytes: 100)
        #expect(throws: StoreError.self) { try copy.appendReplicated(tail, at: sent[100].physicalOffset) }
        var damaged = try master.readLog(from: sent[0].physicalOffset, maxBytes: 100)
        damaged[damaged.count - 1] ^= 0xFF
        let scratch = try openStore(testConfiguration(TempDirectory("scratch").path, segmentSize: segment))
        #expect(throws: StoreError.self) { try scratch.appendReplicated(damaged, at: 0) }
        #expect(scratch.commitLogMaxOffset == 0, "a damaged record is not written")
        scratch.shutdown()

        // The copy survives a restart (a crash-like stop included) and keeps following.
        copy.abandonForTesting()
        replica = nil
        let reopened = try openStore(testConfiguration(replicaDir.path, segmentSize: segment))
        defer { reopened.shutdown() }
        #expect(reopened.commitLogMaxOffset <= master.commitLogMaxOffset)
        for i in 0..<10 { _ = try await master.append(message("T9", body: [UInt8](repeating: UInt8(i), count: 700))) }
        try catchUp(reopened, from: master)
        #expect(reopened.commitLogMaxOffset == master.commitLogMaxOffset)
        #expect(try reopened.messages(topic: "T9", queueId: 0, from: 0, maxCount: 100).messages.count == 10)
        try reopened.verifyConsistency()
        // Promoted, it takes appends of its own after the master's records.
        reopened.isReplicaLog = false
        let own = try await reopened.append(message("T9", body: [42]))
        #expect(own.physicalOffset == master.commitLogMaxOffset)
        #expect(own.queueOffset == 10)
        master.shutdown()
    }

    @Test func readLogServesWholeRecordsWithinASegment() async throws {
        let dir = TempDirectory()
        let store = try openStore(testConfiguration(dir.path, segmentSize: 4096))
        defer { store.shutdown() }
        var ends: Set<Int64> = [0]
        for i in 0..<12 {
            let r = try await store.append(message(body: [UInt8](repeating: UInt8(i), count: 900)))
            ends.insert(r.physicalOffset + Int64(r.wroteBytes))
            ends.insert(r.physicalOffset)
        }
        var offset: Int64 = 0
        while offset < store.commitLogMaxOffset {
            let bytes = try store.readLog(from: offset, maxBytes: 1500)
            #expect(!bytes.isEmpty)
            let next = offset + Int64(bytes.count)
            #expect(offset / 4096 == (next - 1) / 4096, "a chunk stays in one segment")
            #expect(ends.contains(next) || next % 4096 == 0, "a chunk ends at a record or segment boundary")
            offset = next
        }
        #expect(try store.readLog(from: store.commitLogMaxOffset, maxBytes: 100).isEmpty)
        #expect(throws: StoreError.self) { try store.readLog(from: store.commitLogMaxOffset + 1, maxBytes: 100) }
        // One record larger than the chunk comes whole.
        #expect(try store.readLog(from: 0, maxBytes: 10).count > 900)
    }

    @Test func aSyncFlushMasterServesOnlyWhatIsOnDisk() async throws {
        let dir = TempDirectory()
        let store = try openStore(testConfiguration(dir.path, mode: .sync))
        defer { store.shutdown() }
        let grown = Collected()
        store.observeLogGrowth { grown.add(["\($0)"]) }
        store.flushService.holdFlushes(true)
        let done = Collected()
        store.append(try store.encode(message(body: [1, 2, 3]))) { result in done.add(["\(result)"]) }
        #expect(store.commitLogMaxOffset > 0)
        #expect(try store.readLog(from: 0, maxBytes: 4096).isEmpty, "written, not yet synced: a slave must not get it")
        store.flushService.holdFlushes(false)
        for _ in 0..<200 where done.all.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
        #expect(done.all.count == 1)
        #expect(try store.readLog(from: 0, maxBytes: 4096).count == Int(store.commitLogMaxOffset))
        #expect(grown.all.contains("\(store.commitLogMaxOffset)"), "the flush tells the observer")
    }

    @Test func theGrowthObserverStaysCheapOverManyAppends() throws {
        let dir = TempDirectory()
        let store = try openStore(testConfiguration(dir.path))
        defer { store.shutdown() }
        let calls = Atomic<Int>(0)
        store.observeLogGrowth { _ in calls.add(1, ordering: .relaxed) }
        // A closure kept in a Mutex and read back gained a thunk per read: the 130,000th call
        // overflowed the stack. Read through a class box, a read costs the same every time.
        for i in 0..<300_000 { store.logGrew(to: Int64(i)) }
        #expect(calls.load(ordering: .relaxed) == 300_000)
    }

    @Test func anEmptyReplicaStartsWhereTheMastersLogStarts() async throws {
        let dir = TempDirectory()
        let store = try openStore(testConfiguration(dir.path, segmentSize: 4096))
        defer { store.shutdown() }
        #expect(throws: StoreError.self) { try store.startEmptyLog(at: 100) }
        try store.startEmptyLog(at: 8192)
        #expect(store.commitLogMaxOffset == 8192)
        let source = try openStore(testConfiguration(TempDirectory("source").path, segmentSize: 4096))
        defer { source.shutdown() }
        // Three segments on the source; the replica copies from the third on.
        var results = [AppendResult]()
        for i in 0..<12 { results.append(try await source.append(message(body: [UInt8](repeating: UInt8(i), count: 900)))) }
        let third = try #require(results.firstIndex { $0.physicalOffset >= 8192 })
        #expect(results[third].physicalOffset == 8192)
        var offset: Int64 = 8192
        while offset < source.commitLogMaxOffset {
            let bytes = try source.readLog(from: offset, maxBytes: 4096)
            offset = try store.appendReplicated(bytes, at: offset)
        }
        #expect(store.minOffset(topic: "TopicA", queueId: 0) == Int64(third))
        #expect(store.maxOffset(topic: "TopicA", queueId: 0) == 12)
        let read = try store.messages(topic: "TopicA", queueId: 0, from: 0, maxCount: 100)
        #expect(read.messages.first?.queueOffset == Int64(third))
        #expect(read.messages.count == 12 - third)
    }

    /// What the new master answers a slave's `CompareRecords`: whether it holds the same bytes there.
    private func holdsAlike(_ other: MessageStore, _ mine: MessageStore, _ records: [(offset: Int64, size: Int)]) -> [Bool] {
        records.map { r in
            (try? other.recordChecksum(at: r.offset, size: r.size)).map { $0 == (try? mine.recordChecksum(at: r.offset, size: r.size)) } ?? false
        }
    }

    @Test("a former master's log that diverged is cut back to the last record its successor shares, then follows it", arguments: [FlushMode.async, .sync])
    func aDivergedLogIsCutBackAndFollowsOn(mode: FlushMode) async throws {
        let segment: Int64 = 8192
        let oldDir = TempDirectory("old"), newDir = TempDirectory("new")
        var old = try openStore(testConfiguration(oldDir.path, mode: mode, segmentSize: segment))
        let new = try openStore(testConfiguration(newDir.path, mode: mode, segmentSize: segment))
        defer { new.shutdown() }
        new.isReplicaLog = true
        for i in 0..<40 { _ = try await old.append(message("T\(i % 2)", queue: Int32(i % 3), body: [UInt8](repeating: 1, count: 300 + i), keys: "shared\(i)")) }
        try catchUp(new, from: old)
        let shared = new.commitLogMaxOffset
        // The old master takes more its slave never gets, over a segment boundary; then the slave
        // is promoted and takes others, of other sizes, at the same offsets.
        for i in 0..<30 { _ = try await old.append(message("T0", queue: 1, body: [UInt8](repeating: 2, count: 500), keys: "old\(i)")) }
        old.isReplicaLog = true
        new.isReplicaLog = false
        for i in 0..<12 { _ = try await new.append(message("T1", queue: 1, body: [UInt8](repeating: 3, count: 700), keys: "new\(i)")) }
        #expect(old.commitLogMaxOffset > shared + segment)

        let found = try await old.sharedLogEnd(batch: 4) { holdsAlike(new, old, $0) }
        #expect(found == shared)
        #expect(throws: StoreError.self) { try old.truncateReplicatedLog(to: shared + 1) }  // no record starts there
        try old.truncateReplicatedLog(to: shared)
        #expect(old.commitLogMaxOffset == shared)
        #expect((old.commitLogSegmentStarts.last ?? 0) <= shared, "segments past the cut are deleted")
        #expect(old.messages(key: "old3", topic: "T0").isEmpty)
        #expect(old.maxOffset(topic: "T0", queueId: 1) == new.maxOffset(topic: "T0", queueId: 1))
        #expect(old.index.lastIndexedOffset < shared, "recovery would not index the records that replace the cut ones")
        try catchUp(old, from: new)
        // With sync flush, reads serve what is on disk: wait for the flusher (at most 10 s).
        for _ in 0..<1000 where old.replicableOffset < old.commitLogMaxOffset { try await Task.sleep(for: .milliseconds(10)) }
        #expect(try old.readLog(from: 0, maxBytes: 1 << 20) == new.readLog(from: 0, maxBytes: 1 << 20))
        #expect(try old.readLog(from: shared, maxBytes: 1 << 20) == new.readLog(from: shared, maxBytes: 1 << 20))
        for id in new.queueIDs() {
            let a = try new.messages(topic: id.topic, queueId: id.queueId, from: 0, maxCount: 1000).messages
            let b = try old.messages(topic: id.topic, queueId: id.queueId, from: 0, maxCount: 1000).messages
            #expect(a.map(\.physicalOffset) == b.map(\.physicalOffset) && a.map(\.body) == b.map(\.body), "queue \(id)")
        }
        #expect(old.messages(key: "new5", topic: "T1").count == 1)
        try old.verifyConsistency()

        // A crash right after: recovery finds the copy, not the cut-off records.
        old.abandonForTesting()
        old = try openStore(testConfiguration(oldDir.path, mode: mode, segmentSize: segment))
        defer { old.shutdown() }
        #expect(old.commitLogMaxOffset == new.commitLogMaxOffset)
        #expect(old.maxOffset(topic: "T0", queueId: 1) == new.maxOffset(topic: "T0", queueId: 1))
        #expect(old.messages(key: "old3", topic: "T0").isEmpty)
        #expect(old.messages(key: "new11", topic: "T1").count == 1)
        try old.verifyConsistency()
        // Only a replica is cut back.
        old.isReplicaLog = false
        #expect(throws: StoreError.self) { try old.truncateReplicatedLog(to: shared) }
    }

    @Test("the search for the shared end takes a few rounds over a large segment, and finds no end for logs that share nothing")
    func sharedEndSearch() async throws {
        let a = try openStore(testConfiguration(TempDirectory("a").path))
        let b = try openStore(testConfiguration(TempDirectory("b").path))
        defer { a.shutdown(); b.shutdown() }
        for i in 0..<300 { _ = try await a.append(message(body: [UInt8](repeating: UInt8(i % 256), count: 40))) }
        #expect(try await a.sharedLogEnd(batch: 8) { holdsAlike(b, a, $0) } == nil, "an empty log shares nothing")
        b.isReplicaLog = true
        try catchUp(b, from: a)
        #expect(try await b.sharedLogEnd(batch: 8) { holdsAlike(a, b, $0) } == a.commitLogMaxOffset, "the same log is shared whole")
        let cut = try #require(try b.records(inSegmentAt: 0).dropFirst(217).first)
        for i in 0..<5 { _ = try await a.append(message(body: [UInt8](repeating: 9, count: 10 + i))) }
        try b.truncateReplicatedLog(to: cut.offset)
        b.isReplicaLog = false
        for _ in 0..<120 { _ = try await b.append(message(body: [UInt8](repeating: 7, count: 40))) }
        let rounds = Mutex(0)
        let found = try await b.sharedLogEnd(batch: 8) { records in
            rounds.withLock { $0 += 1 }
            return holdsAlike(a, b, records)
        }
        #expect(found == cut.offset)
        #expect(try await b.sharedLogEnd(batch: 1) { holdsAlike(a, b, $0) } == cut.offset, "one probe per round")
        #expect(try b.firstRecord(from: cut.offset, storedByOtherThan: b.configuration.storeHost) == nil)
        let other = try #require(try b.firstRecord(from: cut.offset, storedByOtherThan: "elsewhere:1"))
        #expect(other.offset == cut.offset && other.storeHost == b.configuration.storeHost)
        let searched = try b.records(inSegmentAt: 0).count
        #expect(rounds.withLock { $0 } <= 5, "\(rounds.withLock { $0 }) compare calls for \(searched) records")
    }

    @Test("the shared end is found when the other log no longer keeps this log's oldest segments")
    func sharedEndPastTheOtherLogsRetention() async throws {
        let segment: Int64 = 4096
        let old = try openStore(testConfiguration(TempDirectory("old").path, segmentSize: segment))
        let new = try openStore(testConfiguration(TempDirectory("new").path, segmentSize: segment))
        defer { old.shutdown(); new.shutdown() }
        for i in 0..<12 { _ = try await old.append(message(body: [UInt8](repeating: UInt8(i), count: 900))) }
        // The new one holds the log from the third segment on only (as after its retention ran).
        try new.startEmptyLog(at: 2 * segment)
        var offset = 2 * segment
        while offset < old.commitLogMaxOffset { offset = try new.appendReplicated(try old.readLog(from: offset, maxBytes: 4096), at: offset) }
        let shared = new.commitLogMaxOffset
        for i in 0..<4 { _ = try await old.append(message(body: [UInt8](repeating: 1, count: 300 + i))) }
        old.isReplicaLog = true
        for i in 0..<4 { _ = try await new.append(message(body: [UInt8](repeating: 2, count: 500 + i))) }
        #expect(try await old.sharedLogEnd(batch: 4) { holdsAlike(new, old, $0) } == shared)
    }
}
