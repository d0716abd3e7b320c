/// Where one consumer group stands on one queue.
///
/// `committed` and the sets above it are durable (journal + snapshot); what is in flight is
/// not: after a restart every unacked message is simply deliverable again, which keeps
/// at-least-once without ever losing one.
struct QueueProgress: Codable, Sendable {
    /// Every offset below is done; this is also the consumer offset pull consumers see.
    var committed: Int64 = 0
    /// Offsets at or above `committed` that are done, as runs.
    var acked = OffsetRanges()
    /// Deliveries so far of offsets at or above `committed`.
    var attempts: [Int64: Int32] = [:]
    /// Counts offset commits (resets, pull-consumer updates). Journal events can be appended in
    /// another order than they were applied; a replayed commit not newer than this is stale.
    var commitEpoch: Int64 = 0

    /// Handed out and not yet acked, by offset. Changed through `setInFlight`,
    /// `removeInFlight` and `renewExpired`, which keep `earliestDeadline` true.
    private(set) var inFlight: [Int64: InFlight] = [:]
    /// At or before every deadline in `inFlight` (nil: nothing in flight), so that a receive
    /// looks for expired deliveries only when one may have expired — not by scanning every
    /// in-flight message each time. May be early (an acked message's deadline); never late.
    private(set) var earliestDeadline: ContinuousClock.Instant?
    /// The next offset never handed out (non-FIFO groups).
    var cursor: Int64 = 0
    /// Whether the last receive stopped reading this queue at its filter budget with messages
    /// left unread (not persisted): its long poll reads on rather than wait for an arrival.
    var filterBudgetSpent = false

    /// Messages handed to a consumer and not yet acked (a delayed message waiting in `inFlight`
    /// before its first delivery does not count).
    var deliveredInFlight: Int { inFlight.values.count { $0.deliveryId != 0 } }

    struct InFlight: Sendable {
        /// When the message becomes visible again.
        var deadline: ContinuousClock.Instant
        /// Matches the receipt handle of the current delivery; 0 for a delayed message not yet delivered.
        var deliveryId: UInt64
        var messageGroup: String
        /// Auto-renewal (push consumers): while this client is alive, the broker extends the
        /// deadline by `renewPeriod` instead of redelivering, up to `renewUntil`.
        var renewingClient: String? = nil
        var renewPeriod: Duration = .zero
        var renewUntil: ContinuousClock.Instant? = nil
    }

    /// `acked` is written as `ackedRanges` (`[[from, to)]`); snapshots before it have `acked`, a
    /// list of offsets, which is still read.
    private enum CodingKeys: String, CodingKey { case committed, acked, ackedRanges, attempts, commitEpoch }

    init(committed: Int64 = 0) {
        self.committed = committed
        self.cursor = committed
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        committed = try container.decode(Int64.self, forKey: .committed)
        if let ranges = try container.decodeIfPresent([[Int64]].self, forKey: .ackedRanges) {
            for range in ranges where range.count == 2 && range[0] < range[1] { acked.insert(range[0]..<range[1]) }
        } else {
            acked = OffsetRanges(try container.decodeIfPresent([Int64].self, forKey: .acked) ?? [])
        }
        attempts = try container.decode([Int64: Int32].self, forKey: .attempts)
        commitEpoch = try container.decodeIfPresent(Int64.self, forKey: .commitEpoch) ?? 0
        cursor = committed
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(committed, forKey: .committed)
        try container.encode(acked.ranges.map { [$0.lowerBound, $0.upperBound] }, forKey: .ackedRanges)
        try container.encode(attempts, forKey: .attempts)
        try container.encode(commitEpoch, forKey: .commitEpoch)
    }

    func isDone(_ offset: Int64) -> Bool { offset < committed || acked.contains(offset) }

    /// Whether a (non-FIFO) receive has anything to do on a queue holding `offsets`: messages
    /// past the cursor, a deadline reached (an expired delivery to hand out again, an
    /// auto-renewal due, a delayed message due), or retention having removed offsets below the
    /// committed one (which the receive moves up). `false` is exact: such a receive changes nothing.
    func mayHaveWork(now: ContinuousClock.Instant, offsets: Range<Int64>) -> Bool {
        cursor < offsets.upperBound || committed < offsets.lowerBound || earliestDeadline.map { $0 <= now } ?? false
    }

    mutating func setInFlight(_ offset: Int64, _ flight: InFlight) {
        inFlight[offset] = flight
        earliestDeadline = earliestDeadline.map { min($0, flight.deadline) } ?? flight.deadline
    }

    mutating func removeInFlight(_ offset: Int64) {
        inFlight[offset] = nil
    }

    /// Offsets whose delivery expired by `now`, in order. Auto-renewed deliveries for which
    /// `renew(flight)` answers a new deadline are extended instead. Scans only when
    /// `earliestDeadline` says something may have expired, and then makes it exact.
    mutating func expiredOffsets(now: ContinuousClock.Instant, renew: (InFlight) -> ContinuousClock.Instant?) -> [Int64] {
        guard let earliest = earliestDeadline, earliest <= now else { return [] }
        var expired: [Int64] = []
        var next: ContinuousClock.Instant?
        for (offset, flight) in inFlight {
            var deadline = flight.deadline
            if deadline <= now, let renewed = renew(flight) {
                inFlight[offset]?.deadline = renewed
                deadline = renewed
            }
            if deadline <= now { expired.append(offset) }
            next = next.map { min($0, deadline) } ?? deadline
        }
        earliestDeadline = next
        return expired.sorted()
    }

    /// Marks `offset` done and moves `committed` over every contiguous done offset.
    mutating func markDone(_ offset: Int64) {
        guard offset >= committed else { return }
        removeInFlight(offset)
        acked.insert(offset)
        advanceOverAcked()
    }

    /// Marks every offset of `range` done, as `markDone(_:)` does each.
    mutating func markDone(_ range: Range<Int64>) {
        guard !range.isEmpty, range.upperBound > committed else { return }
        // Offsets past the cursor are in flight only after the offset was moved back.
        if inFlight.keys.contains(where: range.contains) { inFlight = inFlight.filter { !range.contains($0.key) } }
        acked.insert(range)
        advanceOverAcked()
    }

    /// Retention deleted every offset below `offset`: those count as done. Unlike `commit`, what
    /// is above stays as it was: deliveries still in flight are neither forgotten nor handed out
    /// again as new (the cursor only moves up).
    mutating func retentionRemoved(below offset: Int64) {
        guard committed < offset else { return }
        forget(below: offset)
        advanceOverAcked()
    }

    /// Moves the consumer offset (reset or pull-consumer update): nothing below is redelivered,
    /// everything at or above is deliverable again.
    mutating func commit(_ offset: Int64) {
        forget(below: offset)
        cursor = offset
    }

    /// `committed` becomes `offset`, and what was kept about offsets below it is dropped.
    private mutating func forget(below offset: Int64) {
        committed = offset
        acked.removeAll(below: offset)
        attempts = attempts.filter { $0.key >= offset }
        inFlight = inFlight.filter { $0.key >= offset }
    }

    /// Moves `committed` over every contiguous acked offset; the cursor is never left below it.
    private mutating func advanceOverAcked() {
        if let end = acked.removeRun(at: committed) {
            // Attempts of the offsets passed: one lookup each for a short run, one pass over
            // the table for a long one.
            if end - committed <= Int64(attempts.count) {
                for offset in committed..<end { attempts[offset] = nil }
            } else if !attempts.isEmpty {
                attempts = attempts.filter { $0.key >= end }
            }
            committed = end
        }
        cursor = max(cursor, committed)
    }

    /// Applies a journal event (idempotent).
    mutating func apply(_ event: ProgressEvent) {
        switch event {
        case .delivered(_, let offset, let attempt):
            if offset >= committed { attempts[offset] = max(attempts[offset] ?? 0, attempt) }
        case .acked(_, let offset):
            markDone(offset)
        case .committed(_, let offset, let epoch):
            guard epoch > commitEpoch else { return }
            commitEpoch = epoch
            commit(offset)
        }
    }
}
