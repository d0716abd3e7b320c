import Testing

@testable import RocketRPC

@Suite("StreamTable: the per-connection map of open streams")
struct StreamTableTests {
    /// A connection's life in miniature: streams open with rising odd IDs and close in any order,
    /// sometimes many at once; the table must agree with a Dictionary after every step.
    @Test(arguments: [1, 2, 3])
    func agreesWithADictionaryUnderRandomOpensAndCloses(seed: UInt64) {
        var random = Knuth64(seed: seed)
        var table = StreamTable<Int>()
        var model: [Int32: Int] = [:]
        var nextID: Int32 = 1
        for step in 0..<20_000 {
            let open = Array(model.keys)
            // Bursts of opens (a client's pipelined calls), then closes of random open streams.
            if open.isEmpty || random.next() % 100 < (open.count > 150 ? 30 : 55) {
                table[nextID] = step
                model[nextID] = step
                nextID += 2
            } else {
                let id = open[Int(random.next() % UInt64(open.count))]
                #expect(table.removeValue(forKey: id) == model.removeValue(forKey: id))
            }
            // An ID that was never opened, or is closed, is absent; removing it changes nothing.
            let probe = Int32(random.next() % UInt64(nextID + 4))
            #expect(table[probe] == model[probe])
            if random.next() % 10 == 0 { #expect(table.removeValue(forKey: probe | 1) == model.removeValue(forKey: probe | 1)) }
            #expect(table.count == model.count)
        }
        for (id, value) in model { #expect(table[id] == value) }
        // Iteration yields each open stream once.
        let listed = table.map(\.key)
        #expect(listed.count == model.count && Set(listed).count == listed.count && table.allSatisfy { model[$0.key] == $0.value })
    }

    @Test func overwritesKeepsOneEntryAndCopiesAreIndependent() {
        var table = StreamTable<String>()
        table[5] = "a"
        table[5] = "b"
        #expect(table.count == 1 && table[5] == "b")
        // Teardown iterates a copy while clearing the original (as the connection handlers do).
        for id in stride(from: Int32(7), through: 301, by: 2) { table[id] = "s\(id)" }
        let copy = table
        table.removeAll()
        #expect(table.isEmpty && table[5] == nil)
        #expect(copy.count == 149 && copy[301] == "s301" && copy.values.count == 149)
        // Removing while iterating over the value itself (GOAWAY strands streams above an ID).
        var live = copy
        for (id, _) in live where id > 101 { live[id] = nil }
        #expect(live.count == 49 && live[101] == "s101" && live[103] == nil)
    }

    /// Dense runs of IDs (many share home slots or sit next to each other), removed from the
    /// middle of their probe runs and across the end of the slots, in every order tried.
    @Test(arguments: [7, 11, 13])
    func removalFromProbeRunsKeepsTheRestReachable(step: Int) {
        var table = StreamTable<Int32>()
        let ids: [Int32] = (0..<7).map { Int32(1 + $0 * 2) }  // 7 of 16 slots: long runs, wrap-around
        for id in ids { table[id] = id }
        var removed = Set<Int32>()
        for k in 0..<ids.count where k % 2 == 0 {
            let victim = ids[(k * step) % ids.count]
            table[victim] = nil
            removed.insert(victim)
            for id in ids { #expect(table[id] == (removed.contains(id) ? nil : id)) }
        }
        #expect(table.count == ids.count - removed.count)
    }

    /// Stream 0 is the connection, never a stream: asking for it (or removing it) finds nothing
    /// and changes nothing.
    @Test func streamZeroIsNeverFound() {
        var table = StreamTable<String>()
        table[1] = "a"
        #expect(table[0] == nil && table.removeValue(forKey: 0) == nil)
        #expect(table.count == 1 && table[1] == "a")
    }

    /// A peer that spaces its stream IDs to collide under a fixed hash (multiples of 4096 apart)
    /// still gets short probe runs: the seed is random per table. Measured as the longest run of
    /// occupied slots after 500 such IDs, in 200 tables (each with its own seed), so that a hash
    /// that fails for a few seeds in a hundred (a random multiplier alone did) fails here.
    @Test func idsChosenToCollideDoNotShareSlots() {
        let ids: [Int32] = (0..<500).map { Int32(1 + $0 * 4096) }
        var longest = 0
        var worstSeed: UInt32 = 0
        for _ in 0..<200 {
            var table = StreamTable<Int32>()
            for id in ids { table[id] = id }
            if table.longestRunForTesting > longest {
                longest = table.longestRunForTesting
                worstSeed = table.seedForTesting
            }
            #expect(ids.allSatisfy { table[$0] == $0 })
        }
        // With this hash no seed gave more than 49 in a simulation of 20,000; the seed is
        // reported so that a failure (seen once, unexplained) can be replayed.
        #expect(longest < 64, "probe runs grew with the peer's choice of IDs: \(longest) slots, seed \(worstSeed)")
    }
}

/// A seeded linear congruential generator (Knuth's MMIX constants), so that a failure reproduces;
/// the high bits are used, the low ones of an LCG being weak.
private struct Knuth64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return state >> 33
    }
}
