import Foundation
import Testing
@testable import RocketMQStore

@Suite struct ConcurrencyTests {
    @Test func readersSeeOnlyWholeCheckedRecordsWhileWritersAppend() async throws {
        let dir = TempDirectory()
        let store = try openStore(testConfiguration(dir.path, segmentSize: 16 * 1024))
        defer { store.shutdown() }
        let perWriter = 300
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<4 {
                group.addTask {
                    for i in 0..<perWriter {
                        let body = [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: 50 + (i * 37) % 900)
                        _ = try await store.append(message("C", queue: Int32(w % 2), body: body, keys: "w\(w)-\(i)",
                                                           extra: ["len": "\(body.count)", "i": "\(i)"]))
                    }
                }
            }
            for q in Int32(0)..<2 {
                group.addTask {
                    var next: Int64 = 0
                    let deadline = ContinuousClock.now + .seconds(60)
                    while next < Int64(perWriter * 2), ContinuousClock.now < deadline {
                        let r = try store.messages(topic: "C", queueId: q, from: next, maxCount: 16)
                        for m in r.messages {
                            #expect(m.queueOffset == next)
                            #expect(m.body.count == Int(m.properties["len"] ?? "") ?? -1)
                            #expect(m.body.allSatisfy { $0 == UInt8(truncatingIfNeeded: Int(m.properties["i"] ?? "") ?? -1) })
                            next += 1
                        }
                        if r.messages.isEmpty {
                            _ = await store.waitForNewMessages(topic: "C", queueId: q, after: next, timeout: .milliseconds(100))
                        }
                    }
                    #expect(next == Int64(perWriter * 2), "reader of queue \(q) stopped at \(next)")
                }
            }
            try await group.waitForAll()
        }
        try store.verifyConsistency()
    }

    /// An append makes its ConsumeQueue entry visible before it publishes the record to the
    /// flusher and the checkpoint; a reader that finds the entry in between (a consumer polling
    /// while a producer sends) must be able to read the record through every read API.
    @Test(arguments: [FlushMode.async, .sync])  // mapped writes and pwrite
    func aVisibleQueueEntryIsReadableBeforeItsAppendReturns(mode: FlushMode) async throws {
        let dir = TempDirectory()
        let problems = Collected()
        var config = testConfiguration(dir.path, mode: mode, segmentSize: 8192)
        config.afterDispatchForTesting = { store in
            let newest = store.maxOffset(topic: "T", queueId: 0) - 1
            problems.add(store.problemsReading(QueueID(topic: "T", queueId: 0), at: newest))
        }
        let store = try openStore(config)
        defer { store.shutdown() }
        for i in 0..<60 {  // several segments
            _ = try await store.append(message("T", body: [UInt8](repeating: UInt8(i), count: 100 + i * 13), keys: "k\(i)", uniq: "U\(i)"))
        }
        #expect(problems.all.isEmpty, "\(problems.all.prefix(5))")
        #expect(store.commitLog.segmentCount > 2)
    }

    @Test func asyncFlusherCatchesUpWithinTheInterval() async throws {
        let dir = TempDirectory()
        var config = testConfiguration(dir.path)
        config.flushInterval = .milliseconds(50)
        let store = try openStore(config)
        defer { store.shutdown() }
        let r = try await store.append(message(body: [1, 2, 3]))
        let end = r.physicalOffset + Int64(r.wroteBytes)
        let deadline = ContinuousClock.now + .seconds(5)
        while store.commitLogFlushedOffset < end, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(store.commitLogFlushedOffset >= end)
    }
}
