import Foundation
import Synchronization
import Testing
@testable import RocketMQStore

/// The segment being written is prepared (zeroed, and mapped for mapped writes) ahead of the
/// writer by the preparer's thread, off the writer lock.
@Suite struct PreparationTests {
    /// Appends paced so the preparer can keep up: the writer prepares only the segment's first
    /// stretch itself (nothing is prepared before the first append), the preparer the rest.
    @Test(arguments: [FlushMode.async, .sync])  // mapped writes and staged writes
    func thePreparerKeepsAheadOfTheWriter(mode: FlushMode) async throws {
        let dir = TempDirectory()
        let store = try openStore(testConfiguration(dir.path, mode: mode, segmentSize: 8 << 20))
        defer { store.shutdown() }
        let body = [UInt8](repeating: 0x5a, count: 1000)
        for round in 0..<12 {
            for i in 0..<128 {  // about half a stretch
                _ = try await store.append(message("P", body: body, keys: "k\(round)-\(i)"))
            }
            // The writer asks for a stretch more whenever it moved one on: wait (bounded) until
            // it is ready, so the next round starts on prepared bytes.
            let wanted = store.commitLogMaxOffset + Int64(SegmentPreparation.step)
            let deadline = ContinuousClock.now + .seconds(3)
            while let state = store.commitLog.preparationState, state.preparedEnd < wanted, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(2))
            }
            let state = try #require(store.commitLog.preparationState)
            #expect(state.preparedEnd >= wanted, "round \(round): prepared to \(state.preparedEnd), the log ends at \(store.commitLogMaxOffset)")
        }
        let state = try #require(store.commitLog.preparationState)
        #expect(state.byWriter == 1)
        #expect(state.ahead >= 5)
        #expect(store.commitLogMaxOffset > 5 * Int64(SegmentPreparation.step))
        _ = try store.verifyConsistency()
    }

    /// Concurrent appenders over many segments several stretches long, so the preparer works
    /// while segments fill and end: after a restart every record is whole and where it was
    /// (a zero written over a record, or over an end-of-segment marker, would cut the log there).
    @Test(arguments: [FlushMode.async, .sync])
    func zerosPreparedAheadNeverLandOnRecords(mode: FlushMode) async throws {
        let dir = TempDirectory()
        let config = testConfiguration(dir.path, mode: mode, segmentSize: 1 << 20)
        let writers = 4, perWriter = 600
        do {
            let store = try openStore(config)
            defer { store.shutdown() }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for w in 0..<writers {
                    group.addTask {
                        for i in 0..<perWriter {
                            let body = [UInt8](repeating: UInt8(truncatingIfNeeded: w * 31 + i), count: 200 + (i * 997) % 3800)
                            _ = try await store.append(message("Z", queue: Int32(w), body: body, extra: ["w": "\(w)", "i": "\(i)"]))
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(store.commitLog.segmentCount >= 5)
        }
        let reopened = try openStore(config)
        defer { reopened.shutdown() }
        let records = try reopened.verifyConsistency()
        #expect(records.count == writers * perWriter)
        for m in records {
            let w = Int(m.properties["w"] ?? "") ?? -1, i = Int(m.properties["i"] ?? "") ?? -1
            #expect(m.queueId == Int32(w))
            #expect(m.body.count == 200 + (i * 997) % 3800)
            #expect(m.body.allSatisfy { $0 == UInt8(truncatingIfNeeded: w * 31 + i) })
        }
    }
}

extension PreparationTests {
    /// A record that does not fit ends its segment with an end-of-segment marker. When the
    /// marker starts exactly where preparation has reached while the preparer is zeroing the
    /// stretch above, the marker must be written after those zeros, not under them (recovery
    /// would end the log at the zeros and lose what follows).
    @Test(arguments: [FlushMode.async, .sync])
    func anEndOfSegmentMarkerIsNeverZeroedLater(mode: FlushMode) async throws {
        let dir = TempDirectory()
        let step = SegmentPreparation.step
        var config = testConfiguration(dir.path, mode: mode, segmentSize: Int64(2 * step))
        config.maxMessageSize = 1 << 20
        do {
            let store = try openStore(config)
            defer { store.shutdown() }
            // The preparer stops inside its first stretch of the first segment (the second
            // stretch: the writer prepares the first itself) until the gate opens.
            let gate = DispatchSemaphore(value: 0)
            let stopped = DispatchSemaphore(value: 0)
            let first = Mutex(true)
            store.commitLog.beforePreparingAheadForTesting = { range in
                guard range.lowerBound == step, first.withLock({ $0 }) else { return }
                first.withLock { $0 = false }
                stopped.signal()
                gate.wait()
            }
            _ = try await store.append(message("M", body: [1]))
            let overhead = Int(store.commitLogMaxOffset) - 1
            #expect(stopped.wait(timeout: .now() + 10) == .success)
            _ = try await store.append(message("M", body: [UInt8](repeating: 2, count: step - Int(store.commitLogMaxOffset) - overhead)))
            #expect(store.commitLogMaxOffset == Int64(step))
            // Does not fit in the segment's second stretch: a marker at `step`, the record in the next segment.
            let big = Task { try await store.append(message("M", body: [UInt8](repeating: 3, count: step + 1000))) }
            try await Task.sleep(for: .milliseconds(200))
            gate.signal()
            _ = try await big.value
            #expect(store.commitLogMaxOffset > Int64(2 * step))
            #expect(store.commitLog.preparer.waitUntilIdleForTesting(timeout: .seconds(10)))
        }
        let reopened = try openStore(config)
        defer { reopened.shutdown() }
        let records = try reopened.verifyConsistency()
        #expect(records.map { $0.body.first } == [1, 2, 3])
        #expect(records.last?.body.count == step + 1000)
    }
}
