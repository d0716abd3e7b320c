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
        /// A file was created since `takeCreatedFiles()` last ran.
        var createdFiles = false
    }

    /// Files were discarded as damaged when loading: recovery must re-index from `lastIndexedOffset`.
    let damaged: Bool

    static func key(topic: String, key: String) -> String { topic + "#" + key }
    static func uniqueKey(_ id: String) -> String { "\u{1}UNIQ#" + id }

    static func hash(_ key: String) -> UInt32 {
        fold(TagHash.fnv1a(key))
    }

    private static func fold(_ h: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: h ^ (h >> 32)) }

    private static let keySeparator: [UInt8] = Array("#".utf8)
    private static let uniqueKeyPrefix: [UInt8] = Array("\u{1}UNIQ#".utf8)

    /// `hash(key(topic:key:))` of UTF-8 bytes, without building the string.
    static func keyHash(topic: UnsafeRawBufferPointer, key: UnsafeRawBufferPointer) -> UInt32 {
        fold(TagHash.fnv1a(key, continuing: TagHash.fnv1a(keySeparator, continuing: TagHash.fnv1a(topic))))
    }

    /// `hash(uniqueKey(id))` of UTF-8 bytes, without building the string.
    static func uniqueKeyHash(_ id: UnsafeRawBufferPointer) -> UInt32 {
        fold(TagHash.fnv1a(id, continuing: TagHash.fnv1a(uniqueKeyPrefix)))
    }

    /// Calls `body` with each key of a KEYS value, split as `MessageProperty.splitKeys` does
    /// (on spaces, empty pieces dropped): bytewise for ASCII, through `String` otherwise (a
    /// space followed by a combining mark is not a separator there).
    static func forEachKey(_ value: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Void) {
        guard value.allSatisfy({ $0 < 0x80 }) else {
            for key in MessageProperty.splitKeys(String(decoding: value, as: UTF8.self)) {
                var key = key
                key.withUTF8 { body(UnsafeRawBufferPointer($0)) }
            }
            return
        }
        var start = 0
        for i in 0...value.count where i == value.count || value[i] == 0x20 {
            if i > start { body(UnsafeRawBufferPointer(rebasing: value[start..<i])) }
            start = i + 1
        }
    }

    /// Physical offset of the newest record whose keys are all indexed, -1 if none.
    var lastIndexedOffset: Int64 { state.withLock { $0.files.map(\.endPhysicalOffset).max() ?? -1 } }

    /// Indexes the keys and unique id of one dispatched record.
    func put(_ info: RecordCodec.DispatchInfo) throws(StoreError) {
        try put(info.keys.indexHashes, physicalOffset: info.physicalOffset, storeTimestamp: info.storeTimestamp)
    }

    /// Recovery: indexes those of the record's keys that no file holds an entry for (a record
    /// whose entries may or may not have reached the disk): no key is indexed twice.
    func putMissing(_ info: RecordCodec.DispatchInfo) throws(StoreError) {
        let at = info.storeTimestamp
        let missing = state.withLock { state in
            info.keys.indexHashes.filter { h in
                !Self.candidates(of: h, from: at, to: at, limit: 64, in: state.files).contains(info.physicalOffset)
            }
        }
        try put(missing, physicalOffset: info.physicalOffset, storeTimestamp: info.storeTimestamp)
    }

    /// Reserves the disk blocks that `put` of these key hashes at `storeTimestamp` will store
    /// into (creating the file they go to if needed): called before the record is written, so
    /// that a full disk refuses the record rather than leave it acknowledged but unindexed.
    func reserve(_ hashes: [UInt32], storeTimestamp: Int64) throws(StoreError) {
        if hashes.isEmpty { return }
        try state.withLock { (state) throws(StoreError) in
            try file(accepting: storeTimestamp, in: &state).reserve(hashes)
        }
    }

    /// The file a key stored at `storeTimestamp` goes to: the newest, or a new one when that is
    /// full or too old. Under the service's mutex.
    private func file(accepting storeTimestamp: Int64, in state: inout State) throws(StoreError) -> IndexFile {
        if let last = state.files.last, last.accepts(timestamp: storeTimestamp) { return last }
        var created = storeTimestamp
        if let last = state.files.last, created <= last.createdAt { created = last.createdAt + 1 }
        let file = try IndexFile(path: directory + "/" + FileSystem.offsetName(created), createdAt: created,
                                 slotCount: slotCount, entryCapacity: entryCapacity)
        file.crashCountdown = state.crashCountdown
        state.files.append(file)
        state.createdFiles = true
        logger.debug("created IndexFile", metadata: ["created": "\(created)"])
        return file
    }

    /// Indexes the key hashes (`RecordCodec.DispatchKeys.indexHashes`) of one record.
    func put(_ hashes: [UInt32], physicalOffset: Int64, storeTimestamp: Int64) throws(StoreError) {
        if hashes.isEmpty { return }
        try state.withLock { (state) throws(StoreError) in
            // A record's keys go to one file (the array stays empty: no allocation), more
            // only when files fill up on the way.
            var earlier: [IndexFile] = []
            var current: IndexFile?
            for h in hashes {
                let file = try self.file(accepting: storeTimestamp, in: &state)
                try file.put(keyHash: h, physicalOffset: physicalOffset, storeTimestamp: storeTimestamp)
                if current !== file {
                    if let current { earlier.append(current) }
                    current = file
                }
            }
            for f in earlier { f.markIndexed(physicalOffset) }
            current?.markIndexed(physicalOffset)
        }
    }

    /// Candidate physical offsets for `key` stored within `from...to`, newest first and
    /// deduplicated. Candidates must be checked against the record (hash collisions, stale
    /// entries from before a crash).
    func lookup(_ key: String, from: Int64, to: Int64, limit: Int) -> [Int64] {
        let h = IndexService.hash(key)
        let out = state.withLock { Self.candidates(of: h, from: from, to: to, limit: limit * 4 + 16, in: $0.files) }
        var seen = Set<Int64>()
        return out.filter { seen.insert($0).inserted }
    }

    /// Physical offsets of the entries with `hash` stored within `from...to`, newest file first,
    /// at most `limit`, not deduplicated. Under the service's mutex.
    private static func candidates(of hash: UInt32, from: Int64, to: Int64, limit: Int, in files: [IndexFile]) -> [Int64] {
        var out = [Int64]()
        for f in files.reversed() where f.count > 0 && f.beginTimestamp <= to && f.endTimestamp >= from {
            f.lookup(keyHash: hash, from: from, to: to, limit: limit, into: &out)
        }
        return out
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

    /// The log was cut back to `commitLogEnd`: deletes the files that start at or past it (all
    /// their entries were cut off), and no file left claims records at or past it as indexed, so
    /// recovery indexes the records that take their place.
    func cut(at commitLogEnd: Int64) throws(StoreError) {
        let doomed: [String] = state.withLock { state in
            var out = [String]()
            while let f = state.files.last, f.count > 0, f.beginPhysicalOffset >= commitLogEnd {
                out.append(f.mapping.path)
                state.files.removeLast()
            }
            for f in state.files where f.endPhysicalOffset >= commitLogEnd { f.markIndexed(commitLogEnd - 1) }
            return out
        }
        for path in doomed { try FileSystem.remove(path) }
    }

    /// How many files were written since their last sync (for tests).
    var unsyncedFileCount: Int { state.withLock { $0.files.count(where: \.writtenSinceSync) } }

    /// Whether a file was created since the last call: the checkpoint then syncs the directory.
    func takeCreatedFiles() -> Bool {
        state.withLock { state in
            defer { state.createdFiles = false }
            return state.createdFiles
        }
    }

    /// Syncs every file written since its last sync, also one that filled up and was followed
    /// by newer ones in between. A file written while this runs is marked again, and synced
    /// next time.
    func sync() throws(StoreError) {
        let files = state.withLock { state in
            let written = state.files.filter(\.writtenSinceSync)
            for f in written { f.writtenSinceSync = false }
            return written
        }
        do {
            for f in files { try f.mapping.sync() }
        } catch {
            state.withLock { _ in for f in files { f.writtenSinceSync = true } }
            throw error
        }
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
