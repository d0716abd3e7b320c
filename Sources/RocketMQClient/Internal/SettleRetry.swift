/// How a push consumer settles a handled message (ack, new invisible duration, dead-letter
/// forward): tried again while the failure may pass (a busy or unreachable broker), as
/// RocketMQ's consumers do, every 100 ms at first and then up to every 2 s, for at most `limit`
/// or until the consumer stops. The broker keeps an unsettled message of a live consumer hidden
/// (`auto_renew`), and holds back a FIFO group's next message until the last one is settled, so
/// giving up after a few seconds would stall the group for as long.
struct SettleRetry {
    var limit: Duration = .seconds(600)
    var firstPause: Duration = .milliseconds(100)
    var longestPause: Duration = .seconds(2)

    /// The pause before try number `attempt + 1`.
    func pause(after attempt: Int) -> Duration {
        min(firstPause * (1 << min(attempt - 1, 10)), longestPause)
    }

    /// Runs `call` until it succeeds (returning the number of tries), fails in a way that will
    /// not pass, `limit` is over, or `isStopping` says the consumer stops; then its error is thrown.
    func run(
        isStopping: () async -> Bool,
        onRetry: (_ attempt: Int, RocketMQError) -> Void,
        _ call: () async throws(RocketMQError) -> Void
    ) async throws(RocketMQError) -> Int {
        let deadline = ContinuousClock.now + limit
        var attempt = 1
        while true {
            do throws(RocketMQError) {
                try await call()
                return attempt
            } catch {
                guard error.isRetryable, ContinuousClock.now < deadline, await !isStopping() else { throw error }
                onRetry(attempt, error)
                do { try await Task.sleep(for: pause(after: attempt)) } catch { throw .cancelled }
                attempt += 1
            }
        }
    }
}
