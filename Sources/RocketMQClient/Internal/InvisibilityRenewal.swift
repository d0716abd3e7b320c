import Synchronization

/// Keeps a message hidden while its handler runs longer than the invisible duration: every half
/// duration it extends the invisibility and keeps the renewed receipt handle, which the final
/// ack or change must use.
final class InvisibilityRenewal: Sendable {
    private let handle: Mutex<String?>
    private let task: Mutex<Task<Void, Never>?> = Mutex(nil)

    init(message: ReceivedMessage, group: String, duration: Duration, session: ClientSession) {
        handle = Mutex(message.receiptHandle)
        let renewal = Task { [weak self] in
            while true {
                do { try await Task.sleep(for: duration / 2) } catch { return }
                guard let self else { return }
                var current = message
                current.receiptHandle = self.handle.withLock { $0 }
                // In its own task: stopping the renewal must not cut a change the broker may
                // already have applied, or the handle it returns would be lost.
                let renewed = await Task { try? await session.changeInvisibleDuration(current, group: group, to: duration) }.value
                guard let renewed else { return }
                self.handle.withLock { $0 = renewed }
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
