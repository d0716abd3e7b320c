import Synchronization

/// Keeps a message hidden while its handler runs longer than the invisible duration: every third
/// of the duration it extends the invisibility and keeps the renewed receipt handle, which the
/// final ack or change must use. A renewal that fails (a busy broker, a call timing out) is tried
/// again a sixth of the duration later with the handle still held, instead of giving up: one lost
/// call must not make the message visible to the group while its handler still runs.
final class InvisibilityRenewal: Sendable {
    private let handle: Mutex<String?>
    private let task: Mutex<Task<Void, Never>?> = Mutex(nil)

    init(message: ReceivedMessage, group: String, duration: Duration, session: ClientSession) {
        handle = Mutex(message.receiptHandle)
        let renewal = Task { [weak self] in
            var pause = duration / 3
            while true {
                do { try await Task.sleep(for: pause) } catch { return }
                guard let self else { return }
                var current = message
                current.receiptHandle = self.handle.withLock { $0 }
                // In its own task: stopping the renewal must not cut a change the broker may
                // already have applied, or the handle it returns would be lost.
                let renewed = await Task { try? await session.changeInvisibleDuration(current, group: group, to: duration) }.value
                if let renewed {
                    self.handle.withLock { $0 = renewed }
                    pause = duration / 3
                } else {
                    pause = duration / 6
                }
            }
        }
        task.withLock { $0 = renewal }
    }

    /// Stops renewing and returns the receipt handle that is valid now.
    func finish() async -> String? {
        let renewal = task.withLock { $0 }
        renewal?.cancel()
        await renewal?.value
        return handle.withLock { $0 }
    }
}
