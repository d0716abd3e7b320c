/// A set of queue offsets kept as sorted, disjoint, non-adjacent ranges. Offsets done above a
/// group's committed one come in runs (a batch acked, a stretch a filter refused), so a run
/// costs one element however long it is, while a single slow message holds the committed
/// offset back (an auto-renewed delivery may stay in flight for hours).
struct OffsetRanges: Equatable, Sendable {
    private(set) var ranges: [Range<Int64>] = []

    init() {}

    init<S: Sequence<Int64>>(_ offsets: S) {
        for offset in offsets { insert(offset) }
    }

    var isEmpty: Bool { ranges.isEmpty }

    /// How many offsets it holds.
    var count: Int64 { ranges.reduce(0) { $0 + ($1.upperBound - $1.lowerBound) } }

    func contains(_ offset: Int64) -> Bool {
        let index = firstIndex(endingAfter: offset)
        return index < ranges.count && ranges[index].lowerBound <= offset
    }

    mutating func insert(_ offset: Int64) { insert(offset..<(offset + 1)) }

    /// Adds every offset of `range`, merging it with the ranges it overlaps or touches.
    mutating func insert(_ range: Range<Int64>) {
        guard !range.isEmpty else { return }
        // The first range that ends at or after `range` begins: it overlaps or touches it, or
        // lies wholly after it.
        let start = firstIndex(endingAfter: range.lowerBound - 1)
        var end = start
        var merged = range
        while end < ranges.count, ranges[end].lowerBound <= merged.upperBound {
            merged = min(merged.lowerBound, ranges[end].lowerBound)..<max(merged.upperBound, ranges[end].upperBound)
            end += 1
        }
        ranges.replaceSubrange(start..<end, with: [merged])
    }

    /// Drops every offset below `bound`.
    mutating func removeAll(below bound: Int64) {
        let index = firstIndex(endingAfter: bound)
        ranges.removeFirst(index)
        if let first = ranges.first, first.lowerBound < bound { ranges[0] = bound..<first.upperBound }
    }

    /// The end of the run of offsets that starts at `offset`, removed; nil when `offset` is not held.
    mutating func removeRun(at offset: Int64) -> Int64? {
        removeAll(below: offset)
        guard let first = ranges.first, first.lowerBound == offset else { return nil }
        ranges.removeFirst()
        return first.upperBound
    }

    /// Index of the first range whose end is past `offset` (binary search).
    private func firstIndex(endingAfter offset: Int64) -> Int {
        var low = 0, high = ranges.count
        while low < high {
            let middle = (low + high) / 2
            if ranges[middle].upperBound > offset { high = middle } else { low = middle + 1 }
        }
        return low
    }
}
