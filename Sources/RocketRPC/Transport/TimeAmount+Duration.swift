import NIOCore

extension TimeAmount {
    /// Converts a Swift `Duration`, saturating at the range of `TimeAmount`.
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let (ns, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        self = overflow ? .nanoseconds(seconds < 0 ? .min : .max) : .nanoseconds(ns &+ attoseconds / 1_000_000_000)
    }
}
