import Synchronization

/// Keeps a message hidden while its handler runs longer than the invisible duration: every third
/// of the duration it extends the invisibility and keeps the renewed receipt handle, which the
/// final ack or change must use. A renewal that fails with an error worth retrying (a busy
/// broker, a call that timed out) is tried again a sixth of the duration later with the handle
/// still held: one lost call must not make the message visible to the group while its handler
/// still runs. A failure that retrying cannot mend (the handle is no longer valid, the client shut
/// down) ends the renewal.
final class InvisibilityRenewal: Sendable {
    private let handle: Mutex<String?>
    private let task: Mutex<Task<Void, Never>?> = Mutex(nil)

    /// No renewal comes sooner than this after the last, whatever the duration.
    private static let shortestPause = Duration.milliseconds(50)

    init(message: ReceivedMessage, group: String, duration: Duration, session: ClientSession) {
        handle = Mutex(message.receiptHandle)
        let renewal = Task { [weak self] in
            let interval = max(duration / 3, Self.shortestPause)
            var pause = interval
            while true {
                do { try await Task.sleep(for: pause) } catch { return }
                guard let self else { return }
                var current = message
                current.receiptHandle = self.handle.withLock { $0 }
                // In its own task: stopping the renewal must not cut a change the broker may
                // already have applied, or the handle it returns would be lost.
                let outcome = await Task { () -> Result<String, RocketMQError> in
                    do throws(RocketMQError) {
                        return .success(try await session.changeInvisibleDuration(current, group: group, to: duration))
                    } catch {
                        return .failure(error)
                    }
                }.value
                switch outcome {
                case .success(let renewed):
                    self.handle.withLock { $0 = renewed }
                    pause = interval
                case .failure(let error) where error.isRetryable:
                    pause = max(duration / 6, Self.shortestPause)
                case .failure(let error):
                    session.logger.warning("stopped renewing a message's invisibility; it may be delivered again", metadata: [
                        "topic": "\(message.topic)", "message-id": "\(message.messageId)", "error": "\(error)",
                    ])
                    return
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
