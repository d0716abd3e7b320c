import Foundation
import Testing
@testable import RocketMQStore

#if canImport(Glibc)
import Glibc
#endif

/// Crash tests with real processes: `store-crash-child` appends from many concurrent
/// writers and reports every acknowledged append on a pipe; the test SIGKILLs it at a random
/// moment, reopens the directory (crash recovery) and checks that every acknowledged record
/// is there byte for byte, that nothing corrupt is ever read, and that ConsumeQueues and
/// IndexFiles agree exactly with the CommitLog. Then again, on the same directory.
@Suite(.serialized) struct CrashTests {
    struct Ack {
        var physicalOffset: Int64
        var topic: String
        var queueId: Int32
        var queueOffset: Int64
        var key: String
        var length: Int
    }

    /// The child's configuration (see Sources/store-crash-child/main.swift); file sizes must match.
    static func childConfiguration(_ dir: String, segmentSize: Int64) -> StoreConfiguration {
        var config = StoreConfiguration(dataDirectory: dir)
        config.commitLogSegmentSize = segmentSize
        config.consumeQueueFileEntries = 1000
        config.indexSlots = 4096
        config.indexEntries = 20_000
        config.maxMessageSize = 64 * 1024
        config.checkpointInterval = .seconds(3600)
        return config
    }

    /// Same generator as the child's `CrashChildPayload.body`.
    static func body(key: String, length: Int) -> [UInt8] {
        var state: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in key.utf8 { state = (state ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        var out = [UInt8]()
        out.reserveCapacity(length)
        while out.count < length {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            for i in 0..<8 where out.count < length { out.append(UInt8(truncatingIfNeeded: z >> (8 * UInt64(i)))) }
        }
        return out
    }

    /// `store-crash-child` next to the test bundle (same build products directory).
    static func childBinary() throws -> String {
        var candidates = [String]()
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
            // On Linux the bundle is a file in the products directory; on macOS a directory inside it.
            for _ in 0..<4 {
                candidates.append(dir.appendingPathComponent("store-crash-child").path)
                dir = dir.deletingLastPathComponent()
            }
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/debug/store-crash-child").path)
        for c in candidates where FileManager.default.isExecutableFile(atPath: c) { return c }
        Issue.record("store-crash-child not found (looked in \(candidates)); run `swift build --product store-crash-child` before `swift test`")
        throw StoreError.badFile(path: "store-crash-child", reason: "missing")
    }

    /// What one child run reported: its output lines, and whether it said READY.
    struct ChildRun: Sendable {
        var lines: [String]
        var ready: Bool
    }

    /// Runs blocking work (watching a child process) on a thread of its own: on the test's task it
    /// would hold one of the few cooperative threads (two on a two-core machine) for the whole
    /// kill loop, and every other test's tasks and timers would stall behind it.
    static func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try work() }) }.start()
        }
    }

    /// Runs the child until `runFor` after it is ready, SIGKILLs it, returns its output lines.
    static func runChildAndKill(_ binary: String, arguments: [String], runFor: Duration) throws -> ChildRun {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let fd = pipe.fileHandleForReading.fileDescriptor
        var buffer = [UInt8]()
        var lines = [String]()
        var ready = false
        var deadline = ContinuousClock.now + .seconds(20)  // startup (recovery) bound
        var killed = false
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let now = ContinuousClock.now
            if !killed && now >= deadline {
                kill(process.processIdentifier, SIGKILL)
                killed = true
                deadline = now + .seconds(10)  // drain bound
            } else if killed && now >= deadline {
                break
            }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let left = deadline - now
            let ms = Int32(max(1, min(100, left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000)))
            let r = poll(&pfd, 1, ms)
            if r <= 0 { continue }
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }  // EOF: the child is gone
            buffer += chunk[0..<n]
            while let nl = buffer.firstIndex(of: 10) {
                let line = String(decoding: buffer[..<nl], as: UTF8.self)
                buffer.removeSubrange(...nl)
                lines.append(line)
                if line == "READY" && !ready {
                    ready = true
                    deadline = ContinuousClock.now + runFor
                }
            }
        }
        if !killed { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        return ChildRun(lines: lines, ready: ready)  // a torn last line (no newline) is dropped: it was never fully reported
    }

    static func parse(_ line: String) -> Ack? {
        let f = line.split(separator: " ")
        guard f.count == 7, f[0] == "A", let p = Int64(f[1]), let q = Int32(f[3]), let qo = Int64(f[4]), let len = Int(f[6]) else { return nil }
        return Ack(physicalOffset: p, topic: String(f[2]), queueId: q, queueOffset: qo, key: String(f[5]), length: len)
    }

    static func check(_ ack: Ack, in store: MessageStore) throws {
        let m = try store.message(atPhysicalOffset: ack.physicalOffset)
        #expect(m.keys == [ack.key] && m.topic == ack.topic && m.queueId == ack.queueId && m.queueOffset == ack.queueOffset,
                "acknowledged \(ack.key) at \(ack.physicalOffset) but found \(m.keys) \(m.topic)/\(m.queueId)@\(m.queueOffset)")
        #expect(m.body == body(key: ack.key, length: ack.length), "body of \(ack.key) differs")
        let viaQueue = try store.messages(topic: ack.topic, queueId: ack.queueId, from: ack.queueOffset, maxCount: 1).messages.first
        #expect(viaQueue?.physicalOffset == ack.physicalOffset, "ConsumeQueue lost \(ack.key)")
    }

    func killLoop(mode: String, iterations: Int, writers: Int, requireAllAcked: Bool) async throws {
        let binary = try Self.childBinary()
        let dir = TempDirectory("crash-\(mode)")
        let segmentSize: Int64 = 256 * 1024
        var acked = [Ack]()
        var checkedUpTo: Int64 = 0
        var lost = 0
        var rng = SplitMix64(seed: UInt64(mode.utf8.count) &* 7919)
        let started = ContinuousClock.now
        for iteration in 0..<iterations {
            let runFor = Duration.milliseconds(Int.random(in: 5...120, using: &rng))
            let arguments = [dir.path, mode, String(writers), String(segmentSize), String(iteration)]
            let run = try await Self.onOwnThread { try Self.runChildAndKill(binary, arguments: arguments, runFor: runFor) }
            #expect(run.ready, "child never became ready: \(run.lines.prefix(3))")
            let lines = run.lines
            let errors = lines.filter { $0.hasPrefix("E ") || $0.hasPrefix("ERROR") }
            #expect(errors.isEmpty, "child reported errors: \(errors.prefix(3))")
            let fresh = lines.compactMap(Self.parse)

            let store = try openStore(Self.childConfiguration(dir.path, segmentSize: segmentSize))
            let end = store.commitLogMaxOffset
            // Every round, the part of the log written since the last round (and recovered now):
            // ConsumeQueues and IndexFiles against the CommitLog; all of it every fifth round.
            try store.verifyConsistency(from: min(checkedUpTo, end))
            checkedUpTo = end
            var survivors = [Ack]()
            for ack in fresh {
                if !requireAllAcked && ack.physicalOffset >= end { lost += 1; continue }  // unflushed tail (async only)
                try Self.check(ack, in: store)
                survivors.append(ack)
            }
            acked += survivors
            // A sample of older acknowledgements each round, all of them every tenth round.
            let older = iteration % 10 == 9 ? acked : Array(acked.shuffled(using: &rng).prefix(200))
            for ack in older { try Self.check(ack, in: store) }
            if iteration % 5 == 4 || iteration == iterations - 1 {
                let records = try store.verifyConsistency()
                #expect(records.count >= acked.count)
            }
            store.abandonForTesting()  // no clean checkpoint: the next child recovers from a "crash" too
            if Test.current != nil, ContinuousClock.now - started > .seconds(100) {
                Issue.record("kill loop took too long; stopped after \(iteration + 1) iterations")
                break
            }
        }
        #expect(acked.count > iterations, "the child acknowledged too little to prove anything (\(acked.count))")
        if requireAllAcked { #expect(lost == 0) }
    }

    @Test func secondProcessGetsLockErrorNamingTheHolder() async throws {
        let binary = try Self.childBinary()
        let dir = TempDirectory("lock")
        let path = dir.path
        let (ready, pid) = try await Self.onOwnThread { try Self.lockHolderReady(binary, dir: path) }
        defer {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
        #expect(ready, "child never became ready")
        #expect(throws: StoreError.lockHeld(path: dir.path + "/lock", pid: pid)) {
            _ = try openStore(Self.childConfiguration(dir.path, segmentSize: 64 * 1024))
        }
    }

    /// Starts a child that takes the store's lock; returns once it said READY (or 20 s passed)
    /// with its pid. The caller kills and reaps it.
    static func lockHolderReady(_ binary: String, dir: String) throws -> (ready: Bool, pid: Int32) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = [dir, "async", "1", String(64 * 1024), "0"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Wait for READY (bounded).
        let fd = pipe.fileHandleForReading.fileDescriptor
        var seen = [UInt8]()
        let deadline = ContinuousClock.now + .seconds(20)
        var chunk = [UInt8](repeating: 0, count: 4096)
        while !String(decoding: seen, as: UTF8.self).contains("READY\n"), ContinuousClock.now < deadline {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 100) > 0 else { continue }
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            seen += chunk[0..<n]
        }
        return (String(decoding: seen, as: UTF8.self).contains("READY"), process.processIdentifier)
    }

    @Test(.timeLimit(.minutes(3)))
    func syncFlushLosesNoAcknowledgedRecordAcross50Kills() async throws {
        try await killLoop(mode: "sync", iterations: 50, writers: 16, requireAllAcked: true)
    }

    @Test(.timeLimit(.minutes(2)))
    func asyncFlushNeverCorruptsAcross15Kills() async throws {
        try await killLoop(mode: "async", iterations: 15, writers: 8, requireAllAcked: false)
    }

    /// A file system that fills up under the store (the disk-use guard off, so nothing but
    /// ENOSPC says no): appends are refused with `diskFull` instead of the process dying of
    /// SIGBUS when a ConsumeQueue or IndexFile page fault finds no block, and every acknowledged
    /// message reads back, by queue and by key. "many-queues": each message to a new queue (the
    /// ConsumeQueues run out first); "one-queue": eight keys a message (the IndexFile runs out
    /// first; before its pages were reserved ahead of the write, messages were acknowledged
    /// without their keys); "batches": batches of four messages, each to a new queue, so that the
    /// disk runs out in the middle of a batch, which is then refused whole (none of its messages
    /// is stored: before, those ahead of the one that found no block were). The child runs on a
    /// 1.3 MB tmpfs mounted in its own user and mount namespaces (`unshare`), so no privilege is
    /// needed.
    @Test(.timeLimit(.minutes(1)), .enabled(if: CrashTests.canMountTmpfs, "needs `unshare -rm` (unprivileged user namespaces)"),
          arguments: ["many-queues", "one-queue", "batches"])
    func aDiskThatFillsUpRefusesAppendsAndKeepsWhatItAcknowledged(mode: String) async throws {
        let binary = try Self.childBinary()
        let dir = TempDirectory("full-disk")
        let path = dir.path
        let (output, status) = try await Self.onOwnThread {
            try Self.run("/usr/bin/unshare", ["-rm", "sh", "-c", #"mount -t tmpfs -o size=1300k tmpfs "$0" && exec "$1" --full-disk "$0" "$2""#, path, binary, mode])
        }
        #expect(status == 0, "the child ended with status \(status) (7: killed by SIGBUS); it said: \(output)")
        let done = output.split(separator: "\n").first { $0.hasPrefix("DONE ") }
        let counts = Dictionary(uniqueKeysWithValues: (done?.split(separator: " ").dropFirst() ?? []).compactMap { field -> (String, Int)? in
            let kv = field.split(separator: "=")
            return kv.count == 2 ? (String(kv[0]), Int(kv[1]) ?? -1) : nil
        })
        #expect((counts["acked"] ?? 0) > 0 && counts["acked"] == counts["verified"], "\(output)")
        #expect(counts["full"] == 20, "appends did not end in diskFull: \(output)")
        #expect(counts["stray"] == 0, "messages of refused batches were stored: \(output)")
    }

    /// Whether `unshare -rm` can mount a tmpfs here (containers often forbid user namespaces).
    static let canMountTmpfs: Bool = {
        guard let (_, status) = try? run("/usr/bin/unshare", ["-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"]) else { return false }
        return status == 0
    }()

    /// Runs `executable` to its end; its stdout and stderr, and its exit status.
    static func run(_ executable: String, _ arguments: [String]) throws -> (output: String, status: Int32) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (String(decoding: data, as: UTF8.self), process.terminationStatus)
    }
}
