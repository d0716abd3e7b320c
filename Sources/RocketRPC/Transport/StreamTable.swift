/// The open streams of one HTTP/2 connection, by stream ID: the map every frame of a call goes
/// through (opened at HEADERS, looked up at DATA, removed at close).
///
/// A stream ID's home slot is the top bits of murmur3's 32-bit finalizer applied to the ID xor a
/// seed drawn at random per table: two multiplies and three shifts where `Dictionary` runs
/// SipHash over each `Int32` (~2% of a server's time per call). Rising IDs spread evenly, and a
/// peer, which chooses its stream IDs, cannot pick ones that share a slot without knowing the
/// seed. (A random odd multiplier alone, Fibonacci hashing, was not enough: IDs a power of two
/// apart keep only the multiplier's low bits, and about one table in a hundred piled 500 such
/// IDs into runs of 100 slots.) Open
/// addressing with linear probing, at most half full; a removal moves the rest of its probe run
/// back, so no tombstones accumulate. Value semantics (copy-on-write), like the `Dictionary` it
/// replaces: iterating a copy while mutating the original is safe.
struct StreamTable<Value>: Sequence {
    private struct Slot {
        /// 0: empty (stream 0 is the connection itself, never a stream).
        var id: Int32
        var value: Value?
    }

    private var slots: ContiguousArray<Slot>
    private(set) var count = 0
    private let seed = UInt32.random(in: 0...UInt32.max)
    /// 32 − log2(capacity): the home slot is the product's top bits.
    private var shift: UInt32 = 32 - 4

    init() {
        slots = ContiguousArray(repeating: Slot(id: 0, value: nil), count: 16)
    }

    var isEmpty: Bool { count == 0 }

    private var mask: Int { slots.count - 1 }

    private func home(of id: Int32) -> Int {
        var h = UInt32(bitPattern: id) ^ seed
        h ^= h >> 16
        h &*= 0x85eb_ca6b
        h ^= h >> 13
        h &*= 0xc2b2_ae35
        h ^= h >> 16
        return Int(h >> shift)
    }

    /// The slot holding `id`, if any (never for 0, the connection, which marks empty slots).
    private func index(of id: Int32) -> Int? {
        guard id != 0 else { return nil }
        var i = home(of: id)
        while true {
            let slotID = slots[i].id
            if slotID == id { return i }
            if slotID == 0 { return nil }
            i = (i + 1) & mask
        }
    }

    subscript(id: Int32) -> Value? {
        get { index(of: id).flatMap { slots[$0].value } }
        set {
            precondition(id != 0, "stream 0 is the connection")
            if let newValue {
                insert(newValue, for: id)
            } else {
                removeValue(forKey: id)
            }
        }
    }

    private mutating func insert(_ value: Value, for id: Int32) {
        if let i = index(of: id) {
            slots[i].value = value
            return
        }
        if (count + 1) * 2 > slots.count { grow() }
        var i = home(of: id)
        while slots[i].id != 0 { i = (i + 1) & mask }
        slots[i] = Slot(id: id, value: value)
        count += 1
    }

    @discardableResult
    mutating func removeValue(forKey id: Int32) -> Value? {
        guard var hole = index(of: id) else { return nil }
        // Moved out and swapped, never copied: no retain or release of the values on the way.
        let removed = slots[hole].value.take()
        slots[hole].id = 0
        count -= 1
        // Entries after the hole in the same probe run move back if the hole lies on their way
        // from their home slot; the run then has no gap a lookup would stop at.
        var next = (hole + 1) & mask
        while slots[next].id != 0 {
            let home = home(of: slots[next].id)
            let holeIsOnTheWay = hole <= next ? (home <= hole || home > next) : (home <= hole && home > next)
            if holeIsOnTheWay {
                slots.swapAt(hole, next)
                hole = next
            }
            next = (next + 1) & mask
        }
        return removed
    }

    mutating func removeAll() {
        slots = ContiguousArray(repeating: Slot(id: 0, value: nil), count: 16)
        shift = 32 - 4
        count = 0
    }

    private mutating func grow() {
        let old = slots
        slots = ContiguousArray(repeating: Slot(id: 0, value: nil), count: old.count * 2)
        shift -= 1
        count = 0
        for slot in old where slot.id != 0 {
            var i = home(of: slot.id)
            while slots[i].id != 0 { i = (i + 1) & mask }
            slots[i] = slot
            count += 1
        }
    }

    /// The hash seed (for tests: a failing spread can be replayed with it).
    var seedForTesting: UInt32 { seed }

    /// The longest run of occupied slots (for tests of the slot spread).
    var longestRunForTesting: Int {
        var longest = 0, run = 0
        for slot in slots + slots {  // twice: a run may wrap around the end
            run = slot.id == 0 ? 0 : run + 1
            longest = Swift.max(longest, Swift.min(run, slots.count))
        }
        return longest
    }

    /// The values, in no particular order.
    var values: [Value] { map(\.value) }

    /// The open streams, in no particular order.
    func makeIterator() -> some IteratorProtocol<(key: Int32, value: Value)> {
        slots.lazy.compactMap { slot in slot.value.map { (key: slot.id, value: $0) } }.makeIterator()
    }
}
