/// Counts messages received but not yet handled, and makes receivers wait while there are
/// `capacity` of them: the push consumer's back-pressure.
///
/// A receive first reserves places (`reserve(upTo:)`) and then says how many messages it got
/// (`fill(reserved:received:)`); a handled message gives its place back (`release(_:)`). Places
/// reserved by a receive still waiting (a long poll) hold room but are not messages: `cached`
/// counts only the messages.
actor ConsumeCache {
    let capacity: Int
    /// Messages received and not yet handled.
    private(set) var cached = 0
    /// Places reserved by receives under way.
    private var reserved = 0
    private var closed = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// Waits for room, then reserves up to `count` places; `0` once closed.
    func reserve(upTo count: Int) async -> Int {
        while cached + reserved >= capacity, !closed {
            await withCheckedContinuation { waiters.append($0) }
        }
        if closed { return 0 }
        let granted = min(count, capacity - cached - reserved)
        reserved += granted
        return granted
    }

    /// Ends a reservation of `reserved` places with `received` messages, which are cached until
    /// each is released; the places left over are free again.
    func fill(reserved granted: Int, received: Int) {
        reserved -= granted
        cached += received
        if received < granted { wakeAll() }
    }

    /// Gives back `count` places of handled messages.
    func release(_ count: Int) {
        guard count > 0 else { return }
        cached -= count
        wakeAll()
    }

    /// Makes current and future ``reserve(upTo:)`` return `0`.
    func close() {
        closed = true
        wakeAll()
    }

    private func wakeAll() {
        let waiting = waiters
        waiters = []
        for waiter in waiting { waiter.resume() }
    }
}
