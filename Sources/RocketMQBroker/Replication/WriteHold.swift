import Synchronization

/// Whether a master that just started may take writes yet, and the sends waiting to know.
///
/// A master restarted after an operator promoted its slave would otherwise take sends from
/// clients that still route to it, until a NameServer refuses its registration (its epoch is
/// below the promoted master's) and it fences itself: sends acknowledged and then stranded in a
/// log no consumer reads. So a master that registers with NameServers starts *held*: its store
/// refuses appends of its own, and sends wait here, until the NameServers have answered its
/// registration (`Broker.awaitRegistrationVerdict`). The hold then ends either opened (accepted:
/// the store takes writes) or closed (refused: the broker stays fenced).
///
/// Thread-safe. Each waiter is resumed exactly once, by whoever removes it from the table under
/// the lock (the end of the hold, its own timeout, or its task's cancellation). `isHeld` is one
/// relaxed atomic load, for the per-send check.
final class WriteHold: Sendable {
    private struct State {
        /// When the hold ends at the latest, whatever the NameServers say.
        var deadline = ContinuousClock.now
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextId: UInt64 = 0
    }

    private let state = Mutex(State())
    /// Changed only under `state`'s lock; read without it for the per-send check.
    private let heldFlag = Atomic<Bool>(false)

    /// Whether writes are held now.
    var isHeld: Bool { heldFlag.load(ordering: .relaxed) }

    /// Starts holding (before the broker serves anything), until `end` at the latest by `deadline`.
    func hold(until deadline: ContinuousClock.Instant) {
        state.withLock { state in
            state.deadline = deadline
            heldFlag.store(true, ordering: .sequentiallyConsistent)
        }
    }

    /// When the hold ends at the latest (meaningful while it is held).
    var deadline: ContinuousClock.Instant { state.withLock { $0.deadline } }

    /// Ends the hold, if it is on, after running `finally` under the hold's lock; then wakes
    /// every waiting send. `finally` opens the store or leaves it closed: running it under the
    /// lock orders it with every other end of the hold.
    func end(_ finally: () -> Void = {}) {
        let woken = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard heldFlag.load(ordering: .relaxed) else { return [] }
            finally()
            heldFlag.store(false, ordering: .sequentiallyConsistent)
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        woken.forEach { $0.resume() }
    }

    /// Runs `body` under the hold's lock (so that no `end` runs meanwhile).
    func withLock<T>(_ body: () -> T) -> T {
        state.withLock { _ in body() }
    }

    /// Returns once the hold has ended, when the task is cancelled, or `slack` past the hold's
    /// deadline (whoever ends it has failed to), whichever comes first; at once when nothing is
    /// held. The caller checks `isHeld` afterwards.
    func wait(slack: Duration = .milliseconds(500)) async {
        guard isHeld else { return }
        let latest = deadline + slack
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForEnd() }
            group.addTask { try? await Task.sleep(until: latest) }
            await group.next()
            group.cancelAll()
        }
    }

    private func waitForEnd() async {
        let id = state.withLock { state in
            defer { state.nextId += 1 }
            return state.nextId
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let waiting = state.withLock { state in
                    guard heldFlag.load(ordering: .relaxed), !Task.isCancelled else { return false }
                    state.waiters[id] = continuation
                    return true
                }
                if !waiting { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }
}
