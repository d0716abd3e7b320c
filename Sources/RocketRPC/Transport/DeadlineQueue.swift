import NIOCore

/// What a call does when its deadline passes (fail with DEADLINE_EXCEEDED and reset the stream).
/// `deadlines` and `deadlineSlot` belong to the ``DeadlineQueue`` the deadline is armed in: which
/// queue (`nil`: none armed) and the owner's place there.
protocol DeadlineExpiring: AnyObject {
    func deadlineExpired()
    var deadlines: DeadlineQueue? { get set }
    var deadlineSlot: Int { get set }
}

extension DeadlineExpiring {
    /// Forgets this owner's deadline, if one is armed.
    func cancelDeadline() {
        deadlines?.cancel(self)
    }
}

/// The deadlines of one connection's calls, with one event-loop timer for all of them.
///
/// A NIO scheduled callback per call cost every call a heap insertion in the event loop's timer
/// queue and, on cancel, a linear search of that queue and a re-heapify (13% of a producer's CPU
/// with 50 calls in flight). Here arming and cancelling are O(1) (an array with each owner's slot
/// in it), and the one timer is never later than the earliest armed deadline: arming an earlier
/// deadline moves it forward, cancelling leaves it (it fires early at worst, finds nothing due,
/// and moves to the earliest deadline still armed). With the usual uniform timeouts a new
/// deadline is later than the armed ones, so a call touches the timer only when there was none.
///
/// Confined to its connection's event loop. The queue keeps armed owners alive until they are
/// cancelled or expire. Stored properties are `@exclusivity(unchecked)`: confined to one loop and
/// never re-entered while one is being mutated, so the runtime's dynamic exclusivity checks
/// (four or five per call) are skipped.
final class DeadlineQueue {
    private let eventLoop: any EventLoop
    @exclusivity(unchecked) private var entries: [(owner: any DeadlineExpiring, deadline: NIODeadline)] = []
    @exclusivity(unchecked) private var timer: NIOScheduledCallback?
    @exclusivity(unchecked) private var timerDeadline = NIODeadline.distantFuture

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// Number of armed deadlines.
    var count: Int { entries.count }

    /// Calls `owner.deadlineExpired()` once `amount` has passed, unless cancelled first.
    func arm(_ owner: some DeadlineExpiring, in amount: TimeAmount) {
        cancel(owner)
        let deadline = NIODeadline.now() + amount
        owner.deadlines = self
        owner.deadlineSlot = entries.count
        entries.append((owner, deadline))
        if deadline < timerDeadline { schedule(at: deadline) }
    }

    /// Forgets `owner`'s deadline, if it has one armed here.
    func cancel(_ owner: some DeadlineExpiring) {
        let slot = owner.deadlineSlot
        guard slot >= 0, slot < entries.count, entries[slot].owner === owner else { return }
        owner.deadlines = nil
        owner.deadlineSlot = -1
        let last = entries.removeLast()
        if slot < entries.count {
            entries[slot] = last
            last.owner.deadlineSlot = slot
        }
    }

    /// Drops every deadline and the timer (the connection is gone; its calls were failed).
    func cancelAll() {
        for entry in entries {
            entry.owner.deadlines = nil
            entry.owner.deadlineSlot = -1
        }
        entries.removeAll()
        timer?.cancel()
        timer = nil
        timerDeadline = .distantFuture
    }

    private func schedule(at deadline: NIODeadline) {
        timer?.cancel()
        timerDeadline = deadline
        timer = try? eventLoop.assumeIsolated().scheduleCallback(at: deadline, handler: Expiry(queue: self))
    }

    /// The timer fired: expires what is due and re-arms for the earliest deadline left.
    fileprivate func fire() {
        timer = nil
        timerDeadline = .distantFuture
        let now = NIODeadline.now()
        var due: [any DeadlineExpiring] = []
        var index = 0
        while index < entries.count {
            let entry = entries[index]
            if entry.deadline <= now {
                cancel(entry.owner)  // moves the last entry into `index`
                due.append(entry.owner)
            } else {
                index += 1
            }
        }
        if let next = entries.lazy.map(\.deadline).min() { schedule(at: next) }
        for owner in due { owner.deadlineExpired() }
    }

    private struct Expiry: NIOScheduledCallbackHandler {
        let queue: DeadlineQueue

        func handleScheduledCallback(eventLoop: some EventLoop) {
            queue.fire()
        }
    }
}
