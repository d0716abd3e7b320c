import NIOCore

/// What a call does when its deadline passes (fail with DEADLINE_EXCEEDED and reset the stream).
protocol DeadlineExpiring: AnyObject {
    func deadlineExpired()
}

/// A call's deadline on its event loop, as a NIO scheduled callback: unlike `scheduleTask`, arming
/// and cancelling it allocate no promise, future or closure, which showed up on every unary call.
/// Confined to the event loop it was armed on.
struct DeadlineTimer {
    private var callback: NIOScheduledCallback?

    /// Calls `owner.deadlineExpired()` after `amount` unless cancelled first. The loop keeps
    /// `owner` alive until then (or until ``cancel()``).
    mutating func arm(_ owner: some DeadlineExpiring, in amount: TimeAmount, on eventLoop: any EventLoop) {
        cancel()
        callback = try? eventLoop.assumeIsolated().scheduleCallback(in: amount, handler: Expiry(owner: owner))
    }

    mutating func cancel() {
        callback?.cancel()
        callback = nil
    }

    private struct Expiry<Owner: DeadlineExpiring>: NIOScheduledCallbackHandler {
        let owner: Owner

        func handleScheduledCallback(eventLoop: some EventLoop) {
            owner.deadlineExpired()
        }
    }
}
