/// Counts messages received but not yet handled, and makes receivers wait while there are
/// `capacity` of them: the push consumer's back-pressure.
actor ConsumeCache {
    let capacity: Int
    private(set) var cached = 0
    private var closed = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// Waits for room, then reserves up to `count` places; `0` once closed.
    func reserve(upTo count: Int) async -> Int {
        while cached >= capacity, !closed {
            await withCheckedContinuation { waiters.append($0) }
        }
        if closed { return 0 }
        let granted = min(count, capacity - cached)
        cached += granted
        return granted
    }

    /// Gives back `count` places (handled messages, or reservations a receive did not fill).
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
