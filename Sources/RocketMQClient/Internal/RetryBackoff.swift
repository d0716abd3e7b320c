/// The redelivery delay after a failed attempt, from the server's retry policy.
enum RetryBackoff {
    /// Delay before delivery attempt `attempt + 1`; RocketMQ's 1 s … 2 h ladder is what brokers send.
    static func delay(after attempt: Int32, policy: Apache_Rocketmq_V2_RetryPolicy?) -> Duration {
        let index = max(0, Int(attempt) - 1)
        switch policy?.strategy {
        case .customizedBackoff(let ladder)?:
            guard !ladder.next.isEmpty else { return .seconds(1) }
            return ladder.next[min(index, ladder.next.count - 1)].duration
        case .exponentialBackoff(let exponential)?:
            let initial = exponential.initial?.duration ?? .seconds(1)
            let maximum = exponential.max?.duration ?? .seconds(60)
            var delay = initial
            for _ in 0..<min(index, 32) { delay = delay * Double(max(exponential.multiplier, 1)) }
            return min(delay, maximum)
        case nil:
            return .seconds(1)
        }
    }
}
