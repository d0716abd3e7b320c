import ArgumentParser
import Foundation
import Logging
import RocketMQStore

/// `mqbench store`: drives a `MessageStore` on a real directory and prints one JSON object
/// per scenario (stdout), for `Scripts/bench-store.sh` to compare against fio.
struct StoreBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store", abstract: "Benchmark the storage engine (appends, group commit, reads, index, recovery).")

    @Option(help: "Data directory (wiped first).") var dir: String
    @Option(help: "Bytes of 1 KiB messages appended in the async-flush run (also the recovery log size).")
    var bytes: Int64 = 1 << 30
    @Option(help: "Seconds per sync-flush run.") var syncSeconds: Double = 5
    @Option(help: "Concurrent appenders for the sync-flush runs.") var syncWriters: [Int] = [1, 16, 64]
    @Option(help: "Keys indexed for the IndexFile lookup run.") var indexKeys: Int = 1_000_000
    @Option(help: "Scenarios to run: async,sync,read,index,recovery.") var only: String = "async,sync,read,index,recovery"
    @Option(help: "Async flush: sync as soon as this many pages are dirty (default: the store's).") var flushDirtyPages: Int?

    func run() async throws {
        let wanted = Set(only.split(separator: ",").map(String.init))
        var logger = Logger(label: "mqbench")
        logger.logLevel = .warning
        if wanted.contains("async") || wanted.contains("read") || wanted.contains("recovery") {
            try await asyncAppendThenReadThenRecover(wanted: wanted, logger: logger)
        }
        if wanted.contains("sync") {
            for writers in syncWriters { try await syncAppend(writers: writers, logger: logger) }
        }
        if wanted.contains("index") { try await indexLookup(logger: logger) }
    }

    func wipe(_ path: String) throws {
        if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func emit(_ fields: [String: Any]) {
        var f = fields
        f["rss_mib"] = Self.rssMiB().current
        f["peak_rss_mib"] = Self.rssMiB().peak
        if let data = try? JSONSerialization.data(withJSONObject: f, options: [.sortedKeys]),
           let text = String(data: data, encoding: .utf8) {
            FileHandle.standardOutput.write(Data((text + "\n").utf8))
        }
    }

    static func rssMiB() -> (current: Double, peak: Double) {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return (0, 0) }
        func field(_ name: String) -> Double {
            for line in status.split(separator: "\n") where line.hasPrefix(name) {
                let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? 0
                return kb / 1024
            }
            return 0
        }
        return (field("VmRSS:"), field("VmHWM:"))
    }

    static func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }

    static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
    }

    // MARK: Async append, queue reads, recovery

    func asyncAppendThenReadThenRecover(wanted: Set<String>, logger: Logger) async throws {
        let path = dir + "/async"
        try wipe(path)
        var config = StoreConfiguration(dataDirectory: path)
        config.flushMode = .async
        if let flushDirtyPages { config.flushDirtyPages = flushDirtyPages }
        let body = [UInt8](repeating: 0x61, count: 1024)
        let queues: Int32 = 8
        var store = try MessageStore(configuration: config, logger: logger)
        var written: Int64 = 0
        var count = 0
        // Messages arrive built (as the broker gets them off the wire): cycle through a few.
        let prepared = (0..<32).map { i in
            MessageToAppend(topic: "BenchAsync", queueId: Int32(i) % queues, body: body,
                            properties: [MessageProperty.tags: "t\(i % 4)"], bornHost: "127.0.0.1:5000")
        }
        let start = ContinuousClock.now
        while written < bytes {
            let r = try await store.append(prepared[count % prepared.count])
            written += Int64(r.wroteBytes)
            count += 1
        }
        let elapsed = Self.seconds(ContinuousClock.now - start)
        emit(["scenario": "async-append", "messages": count, "record_bytes": written, "seconds": elapsed,
              "msgs_per_s": Double(count) / elapsed, "mb_per_s": Double(written) / elapsed / 1e6,
              "body_mb_per_s": Double(count * 1024) / elapsed / 1e6])

        if wanted.contains("read") {
            // Full messages through the ConsumeQueue (entry lookup + pread + CRC check + decode).
            var read = 0
            var readBytes = 0
            let t0 = ContinuousClock.now
            for q in 0..<queues {
                var offset: Int64 = 0
                while true {
                    let r = try store.messages(topic: "BenchAsync", queueId: q, from: offset, maxCount: 32)
                    if r.messages.isEmpty { break }
                    read += r.messages.count
                    readBytes += r.messages.reduce(0) { $0 + Int($1.storeSize) }
                    offset = r.nextOffset
                }
            }
            let t = Self.seconds(ContinuousClock.now - t0)
            emit(["scenario": "queue-read", "messages": read, "seconds": t, "msgs_per_s": Double(read) / t,
                  "mb_per_s": Double(readBytes) / t / 1e6])
            // Tag-filtered read: a quarter of the messages match.
            var matched = 0
            let t1 = ContinuousClock.now
            var offset: Int64 = 0
            while true {
                let r = try store.messages(topic: "BenchAsync", queueId: 0, from: offset, maxCount: 32, tagFilter: ["t0"])
                matched += r.messages.count
                if r.nextOffset == offset || r.nextOffset >= r.maxOffset { break }
                offset = r.nextOffset
            }
            let tf = Self.seconds(ContinuousClock.now - t1)
            emit(["scenario": "queue-read-tag-filter", "messages": matched, "entries_scanned": offset, "seconds": tf,
                  "entries_per_s": Double(offset) / tf])
        }
        store.shutdown()

        if wanted.contains("recovery") {
            // Worst case: no checkpoint at all, so every record of the log is read, CRC-checked
            // and re-dispatched (compared with its ConsumeQueue entry) from offset 0.
            try FileManager.default.removeItem(atPath: path + "/checkpoint")
            let dropped = Self.dropCaches()
            let t0 = ContinuousClock.now
            store = try MessageStore(configuration: config, logger: logger)
            let t = Self.seconds(ContinuousClock.now - t0)
            emit(["scenario": "recovery-full-scan", "log_bytes": store.commitLogMaxOffset, "seconds": t,
                  "page_cache_dropped": dropped, "note": "checkpoint deleted: CRC scan + redispatch of the whole log"])
            store.shutdown()
            // Same, with ConsumeQueues and IndexFiles gone too: rebuilt from the CommitLog.
            try FileManager.default.removeItem(atPath: path + "/checkpoint")
            try FileManager.default.removeItem(atPath: path + "/consumequeue")
            let t1 = ContinuousClock.now
            store = try MessageStore(configuration: config, logger: logger)
            let tr = Self.seconds(ContinuousClock.now - t1)
            let rebuilt = store.maxOffset(topic: "BenchAsync", queueId: 0)
            emit(["scenario": "recovery-rebuild-queues", "log_bytes": store.commitLogMaxOffset, "seconds": tr,
                  "queue0_entries": rebuilt])
            store.shutdown()
        }
        try? FileManager.default.removeItem(atPath: path)
    }

    static func dropCaches() -> Bool {
        sync()
        guard let handle = FileHandle(forWritingAtPath: "/proc/sys/vm/drop_caches") else { return false }
        defer { try? handle.close() }
        do { try handle.write(contentsOf: Data("3\n".utf8)) } catch { return false }
        return true
    }

    // MARK: Sync flush (group commit)

    func syncAppend(writers: Int, logger: Logger) async throws {
        let path = dir + "/sync-\(writers)"
        try wipe(path)
        var config = StoreConfiguration(dataDirectory: path)
        config.flushMode = .sync
        let store = try MessageStore(configuration: config, logger: logger)
        let body = [UInt8](repeating: 0x62, count: 1024)
        let duration = Duration.milliseconds(Int(syncSeconds * 1000))
        let start = ContinuousClock.now
        let deadline = start + duration
        let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
            for w in 0..<writers {
                group.addTask {
                    var mine = [Double]()
                    let message = MessageToAppend(topic: "BenchSync", queueId: Int32(w % 8), body: body, bornHost: "127.0.0.1:5000")
                    while ContinuousClock.now < deadline {
                        let t0 = ContinuousClock.now
                        _ = try await store.append(message)
                        mine.append(Self.seconds(ContinuousClock.now - t0) * 1e6)
                    }
                    return mine
                }
            }
            var all = [Double]()
            for try await part in group { all += part }
            return all
        }
        let elapsed = Self.seconds(ContinuousClock.now - start)
        let sorted = latencies.sorted()
        emit(["scenario": "sync-append", "writers": writers, "messages": latencies.count, "seconds": elapsed,
              "msgs_per_s": Double(latencies.count) / elapsed, "p50_us": Self.percentile(sorted, 0.5),
              "p99_us": Self.percentile(sorted, 0.99), "max_us": sorted.last ?? 0])
        store.shutdown()
        try? FileManager.default.removeItem(atPath: path)
    }

    // MARK: IndexFile lookups

    func indexLookup(logger: Logger) async throws {
        let path = dir + "/index"
        try wipe(path)
        var config = StoreConfiguration(dataDirectory: path)
        config.flushMode = .async
        let store = try MessageStore(configuration: config, logger: logger)
        let body = [UInt8](repeating: 0x63, count: 100)
        let t0 = ContinuousClock.now
        for i in 0..<indexKeys {
            _ = try await store.append(MessageToAppend(
                topic: "BenchIndex", queueId: Int32(i % 8), body: body,
                properties: [MessageProperty.keys: "order-\(i)", MessageProperty.uniqueKey: "U\(i)"], bornHost: "127.0.0.1:5000"))
        }
        let fill = Self.seconds(ContinuousClock.now - t0)
        var rng = SystemRandomNumberGenerator()
        var keyTimes = [Double]()
        var uniqTimes = [Double]()
        var misses = 0
        for _ in 0..<20_000 {
            let i = Int.random(in: 0..<indexKeys, using: &rng)
            let a = ContinuousClock.now
            let found = store.messages(key: "order-\(i)", topic: "BenchIndex", maxCount: 1)
            let b = ContinuousClock.now
            let byId = store.message(uniqueId: "U\(i)")
            let c = ContinuousClock.now
            if found.count != 1 || byId == nil { misses += 1 }
            keyTimes.append(Self.seconds(b - a) * 1e6)
            uniqTimes.append(Self.seconds(c - b) * 1e6)
        }
        keyTimes.sort()
        uniqTimes.sort()
        emit(["scenario": "index-lookup", "keys": indexKeys, "lookups": keyTimes.count, "misses": misses, "fill_seconds": fill,
              "key_median_us": Self.percentile(keyTimes, 0.5), "key_p99_us": Self.percentile(keyTimes, 0.99),
              "uniq_median_us": Self.percentile(uniqTimes, 0.5), "uniq_p99_us": Self.percentile(uniqTimes, 0.99)])
        store.shutdown()
        try? FileManager.default.removeItem(atPath: path)
    }
}
