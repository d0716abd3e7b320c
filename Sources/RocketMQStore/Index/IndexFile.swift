import Atomics

/// One IndexFile: a hash table of message keys to CommitLog offsets, with chained entries,
/// so `MessageStore.messages(key:...)` and `message(uniqueId:)` avoid scanning the log.
///
/// Layout: a 40-byte header (begin/end store timestamp, begin/end physical offset, slots
/// used, entry count), `slotCount` 4-byte slots holding the number of the newest entry for
/// that hash (0 = none), then `entryCount` 20-byte entries: key hash u32, physical offset
/// i64, store time in ms after the begin timestamp i32, previous entry number u32.
///
/// Not thread-safe by itself: `IndexService` serialises access (`@unchecked Sendable` for
/// that reason; only `msync` runs outside its mutex, and it is thread-safe).
final class IndexFile: @unchecked Sendable {
    static let headerSize = 40
    static let entrySize = 20

    let mapping: MappedFile
    let slotCount: Int
    let entryCapacity: Int
    /// File name: creation time in ms, 20 digits.
    let createdAt: Int64

    init(path: String, createdAt: Int64, slotCount: Int, entryCapacity: Int) throws(StoreError) {
        self.slotCount = slotCount
        self.entryCapacity = entryCapacity
        self.createdAt = createdAt
        mapping = try MappedFile(path: path, size: IndexFile.headerSize + slotCount * 4 + entryCapacity * IndexFile.entrySize)
    }

    private func load<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
        T(littleEndian: UnsafeRawPointer(mapping.base).loadUnaligned(fromByteOffset: offset, as: T.self))
    }
    private func store<T: FixedWidthInteger>(_ value: T, _ offset: Int) {
        if let countdown = crashCountdown, !countdown.allowsStore() { return }
        mapping.base.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
    }

    /// Crash tests only (`IndexService.simulateCrash(afterStores:)`): nil in a running store.
    var crashCountdown: CrashCountdown?

    var beginTimestamp: Int64 { load(0, Int64.self) }
    var endTimestamp: Int64 { load(8, Int64.self) }
    var beginPhysicalOffset: Int64 { load(16, Int64.self) }
    /// Physical offset of the newest record whose keys are all indexed (-1 when none):
    /// set by `markIndexed` after every key of a record went in, so a crash between two
    /// keys of one record makes recovery index that record again.
    var endPhysicalOffset: Int64 { count == 0 ? -1 : load(24, Int64.self) }

    func markIndexed(_ physicalOffset: Int64) {
        store(physicalOffset, 24)
        writtenSinceSync = true
    }

    /// Written since `IndexService.sync()` last synced it (every write ends with `markIndexed`).
    var writtenSinceSync = false
    var count: Int { Int(load(36, UInt32.self)) }
    var isFull: Bool { count >= entryCapacity }

    /// Whether a record stored at `timestamp` can go in this file (room, and the time delta fits 32 bits).
    func accepts(timestamp: Int64) -> Bool {
        !isFull && (count == 0 || (timestamp - beginTimestamp >= 0 && timestamp - beginTimestamp <= Int64(Int32.max)))
    }

    private var entriesBase: Int { IndexFile.headerSize + slotCount * 4 }
    /// Byte offset of the slot `keyHash` hashes to.
    private func slotOffset(_ keyHash: UInt32) -> Int { IndexFile.headerSize + Int(keyHash % UInt32(slotCount)) * 4 }
    /// Byte offset of entry `n` (0-based; entry numbers in slots and chains are `n + 1`).
    private func entryOffset(_ n: Int) -> Int { entriesBase + n * IndexFile.entrySize }

    /// Reserves the blocks the next `put`s of `hashes` store into (as far as the file has room).
    func reserve(_ hashes: [UInt32]) throws(StoreError) {
        let n = count
        for (i, h) in hashes.enumerated() where n + i < entryCapacity {
            try reserve(keyHash: h, entry: n + i)
        }
    }

    /// The header, the slot of `keyHash` and entry `entry`: the slots are written all over their
    /// table, the entries front to back (reserved ahead, as long as the entries so far, up to 1 MiB).
    private func reserve(keyHash: UInt32, entry n: Int) throws(StoreError) {
        let slot = slotOffset(keyHash), e = entryOffset(n)
        try mapping.reserve(0..<IndexFile.headerSize)
        try mapping.reserve(slot..<(slot + 4))
        try mapping.reserve(e..<(e + IndexFile.entrySize), ahead: min(n * IndexFile.entrySize, 1 << 20))
    }

    /// - Throws: `StoreError.diskFull` when the disk has no block for the pages the entry
    ///   goes in (nothing stored then).
    func put(keyHash: UInt32, physicalOffset: Int64, storeTimestamp: Int64) throws(StoreError) {
        let n = count
        let slot = slotOffset(keyHash), e = entryOffset(n)
        try reserve(keyHash: keyHash, entry: n)
        if n == 0 {
            store(storeTimestamp, 0)
            store(physicalOffset, 16)
            store(Int64(-1), 24)
        }
        let previous: UInt32 = load(slot, UInt32.self)
        let number = UInt32(n + 1)
        store(keyHash, e)
        store(physicalOffset, e + 4)
        store(Int32(truncatingIfNeeded: storeTimestamp - beginTimestamp), e + 12)
        store(previous, e + 16)
        store(storeTimestamp, 8)
        // The count before the slot: the page cache keeps whatever a killed process stored,
        // in program order. Killed between the two, a counted entry no chain reaches is
        // harmless (its record is not marked, so recovery indexes it again). The other way
        // round a slot names an entry past the count: lookups stop at once, hiding every
        // older entry of that slot, and the next put there links its entry to itself.
        store(number, 36)
        store(number, slot)
        if previous == 0 { store(load(32, UInt32.self) + 1, 32) }
    }

    /// Physical offsets of entries with `keyHash` stored within `from...to`, newest first.
    func lookup(keyHash: UInt32, from: Int64, to: Int64, limit: Int, into out: inout [Int64]) {
        let slot = slotOffset(keyHash)
        var number = Int(load(slot, UInt32.self))
        let n = count
        let begin = beginTimestamp
        var steps = 0
        while number > 0, number <= n, out.count < limit, steps < n {
            let e = entryOffset(number - 1)
            let t = begin + Int64(load(e + 12, Int32.self))
            if load(e, UInt32.self) == keyHash, t >= from, t <= to {
                out.append(load(e + 4, Int64.self))
            }
            let previous = Int(load(e + 16, UInt32.self))
            // Chains only point backwards; anything else is damage: stop rather than loop.
            guard previous < number else { break }
            number = previous
            steps += 1
        }
    }

    /// Header and entry count look sane (used after a crash).
    var isConsistent: Bool {
        !mapping.wasShort && count <= entryCapacity
    }
}

/// Crash tests: how many more stores the IndexFiles of one `IndexService` take before they
/// drop every later one, as a killed process's memory writes stop between two instructions
/// (the page cache keeps those made before). Used under the service's mutex; the atomic
/// only makes it `Sendable`.
final class CrashCountdown: Sendable {
    private let left: ManagedAtomic<Int>

    init(stores: Int) { left = ManagedAtomic(stores) }

    /// Stores still to come before the crash point; 0 once it is reached.
    var remaining: Int { left.load(ordering: .relaxed) }

    /// Counts one store; false once the crash point is reached (the store must be dropped).
    func allowsStore() -> Bool {
        let n = left.load(ordering: .relaxed)
        guard n > 0 else { return false }
        left.store(n - 1, ordering: .relaxed)
        return true
    }
}
