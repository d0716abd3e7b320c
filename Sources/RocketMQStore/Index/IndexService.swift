import Logging
import Synchronization

/// The IndexFiles under `<data>/index/`: keys of every message (`topic#key` for each KEYS
/// entry, and the unique id) to physical offsets, a new file when one is full.
///
/// Thread-safe: a mutex guards the files; lookups are short chain walks.
/// `@unchecked Sendable`: the non-Sendable `IndexFile`s are reached only under `state`.
final class IndexService: @unchecked Sendable {
    let directory: String
    let slotCount: Int
    let entryCapacity: Int
    private let state = Mutex<State>(State())
    private let logger: Logger

    init(directory: String, slotCount: Int, entryCapacity: Int, logger: Logger) throws(StoreError) {
        self.directory = directory
        self.slotCount = slotCount
        self.entryCapacity = entryCapacity
        self.logger = logger
        try FileSystem.makeDirectory(directory)
        var files = [IndexFile]()
        var damaged = false
        for name in FileSystem.list(directory) {
            guard name.utf8.count == 20, let created = Int64(name) else { continue }
            let path = directory + "/" + name
            if !damaged {
                let f = try IndexFile(path: path, createdAt: created, slotCount: slotCount, entryCapacity: entryCapacity)
                if f.isConsistent {
                    files.append(f)
                    continue
                }
                damaged = true
            }
            // A damaged file and every newer one go; recovery re-indexes from the last good file.
            logger.warning("discarding damaged IndexFile", metadata: ["path": "\(path)"])
            try FileSystem.remove(path)
        }
        self.damaged = damaged
        state.withLock { $0.files = files }
    }

    private struct State {
        var files: [IndexFile] = []
        /// Crash tests: given to every file, including the ones created later.
        var crashCountdown: CrashCountdown?
    }

    /// Files were discarded as damaged when loading: recovery must re-index from `lastIndexedOffset`.
    let damaged: Bool

    static func key(topic: String, key: String) -> String { topic + "#" + key }
    static func uniqueKey(_ id: String) -> String { "\u{1}UNIQ#" + id }

    static func hash(_ key: String) -> UInt32 {
        let h = TagHash.fnv1a(key)
        return UInt32(truncatingIfNeeded: h ^ (h >> 32))
    }

    /// Physical offset of the newest record whose keys are all indexed, -1 if none.
    var lastIndexedOffset: Int64 { state.withLock { $0.files.map(\.endPhysicalOffset).max() ?? -1 } }

    /// Indexes the keys and unique id of one dispatched record.
    func put(_ info: RecordCodec.DispatchInfo) throws(StoreError) {
        if info.keys.isEmpty && info.uniqueId == nil { return }
        var hashes = info.keys.map { IndexService.hash(IndexService.key(topic: info.topic, key: $0)) }
        if let u = info.uniqueId { hashes.append(IndexService.hash(IndexService.uniqueKey(u))) }
        try state.withLock { (state) throws(StoreError) in
            var touched = [IndexFile]()
            for h in hashes {
                var file: IndexFile
                if let last = state.files.last, last.accepts(timestamp: info.storeTimestamp) {
                    file = last
                } else {
                    var created = info.storeTimestamp
                    if let last = state.files.last, created <= last.createdAt { created = last.createdAt + 1 }
                    file = try IndexFile(path: directory + "/" + FileSystem.offsetName(created), createdAt: created,
                                         slotCount: slotCount, entryCapacity: entryCapacity)
                    file.crashCountdown = state.crashCountdown
                    state.files.append(file)
                    logger.debug("created IndexFile", metadata: ["created": "\(created)"])
                }
                file.put(keyHash: h, physicalOffset: info.physicalOffset, storeTimestamp: info.storeTimestamp)
                if touched.last !== file { touched.append(file) }
            }
            for f in touched { f.markIndexed(info.physicalOffset) }
        }
    }

    /// Candidate physical offsets for `key` stored within `from...to`, newest first and
    /// deduplicated. Candidates must be checked against the record (hash collisions, stale
    /// entries from before a crash).
    func lookup(_ key: String, from: Int64, to: Int64, limit: Int) -> [Int64] {
        let h = IndexService.hash(key)
        var out = [Int64]()
        state.withLock { state in
            for f in state.files.reversed() where f.count > 0 && f.beginTimestamp <= to && f.endTimestamp >= from {
                f.lookup(keyHash: h, from: from, to: to, limit: limit * 4 + 16, into: &out)
            }
        }
        var seen = Set<Int64>()
        return out.filter { seen.insert($0).inserted }
    }

    /// Deletes files whose every entry points below `commitLogMin`.
    func dropFiles(below commitLogMin: Int64) {
        let doomed: [String] = state.withLock { state in
            var out = [String]()
            while state.files.count > 1, let f = state.files.first, f.endPhysicalOffset < commitLogMin {
                out.append(f.mapping.path)
                state.files.removeFirst()
            }
            return out
        }
        for path in doomed { try? FileSystem.remove(path) }
    }

    /// Deletes files that start at or past `commitLogEnd` (all their entries were cut off).
    func dropFiles(startingAtOrAfter commitLogEnd: Int64) throws(StoreError) {
        let doomed: [String] = state.withLock { state in
            var out = [String]()
            while let f = state.files.last, f.count > 0, f.beginPhysicalOffset >= commitLogEnd {
                out.append(f.mapping.path)
                state.files.removeLast()
            }
            return out
        }
        for path in doomed { try FileSystem.remove(path) }
    }

    func sync() throws(StoreError) {
        let files = state.withLock { $0.files.suffix(2) }
        for f in files { try f.mapping.sync() }
    }

    /// Crash tests: from now on the IndexFiles (those to come included) take `stores` more
    /// memory stores and drop the rest, leaving what a SIGKILL at that point leaves. Returns
    /// the countdown, whose `remaining` says whether that point was reached.
    func simulateCrash(afterStores stores: Int) -> CrashCountdown {
        let countdown = CrashCountdown(stores: stores)
        state.withLock { state in
            state.crashCountdown = countdown
            for f in state.files { f.crashCountdown = countdown }
        }
        return countdown
    }
}
