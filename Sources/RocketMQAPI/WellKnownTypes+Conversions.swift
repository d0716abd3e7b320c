import Foundation

// Conversions between the protocol's well-known types and Swift's, shared by the broker, the
// client and mqadmin.

extension Google_Protobuf_Timestamp {
    /// The instant `milliseconds` after the Unix epoch.
    public init(milliseconds: Int64) {
        self.init(seconds: milliseconds / 1000, nanos: Int32(milliseconds % 1000) * 1_000_000)
    }

    /// The wall clock now, to the nanosecond as the system reads it.
    public static func now() -> Google_Protobuf_Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return .init(seconds: Int64(ts.tv_sec), nanos: Int32(ts.tv_nsec))
    }

    /// `date`, to the nearest millisecond.
    public init(date: Date) {
        self.init(milliseconds: Int64((date.timeIntervalSince1970 * 1000).rounded()))
    }

    /// Milliseconds since the Unix epoch (sub-millisecond nanos dropped), clamped to `Int64`:
    /// timestamps come from peers, and one past ±292 million years must not trap.
    public var milliseconds: Int64 {
        let (ms, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        if overflow { return seconds < 0 ? .min : .max }
        let (sum, overflowed) = ms.addingReportingOverflow(Int64(nanos / 1_000_000))
        return overflowed ? (ms < 0 ? .min : .max) : sum
    }

    public var date: Date { Date(timeIntervalSince1970: Double(seconds) + Double(nanos) / 1e9) }

    /// ISO 8601 in UTC with milliseconds (`2026-11-26T20:03:06.794Z`), for events that are
    /// often within one second of each other (a message's trace).
    public var iso8601Milliseconds: String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }
}

extension Google_Protobuf_Duration {
    /// `duration`, to the nanosecond.
    public init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self.init(seconds: seconds, nanos: Int32(attoseconds / 1_000_000_000))
    }

    public var duration: Duration { .seconds(seconds) + .nanoseconds(Int64(nanos)) }
}
