/// The `grpc-timeout` header: at most 8 ASCII digits followed by a unit
/// (`H` hours, `M` minutes, `S` seconds, `m` millis, `u` micros, `n` nanos). Stateless.
enum GRPCTimeout {
    /// Parses a header value; `nil` when it is not a valid timeout.
    static func parse(_ text: String) -> Duration? {
        let utf8 = Array(text.utf8)
        guard utf8.count >= 2, utf8.count <= 9, let unit = utf8.last else { return nil }
        var value: Int64 = 0
        for c in utf8.dropLast() {
            guard c >= 0x30, c <= 0x39 else { return nil }
            value = value * 10 + Int64(c - 0x30)
        }
        switch unit {
        case UInt8(ascii: "H"): return .seconds(value * 3600)
        case UInt8(ascii: "M"): return .seconds(value * 60)
        case UInt8(ascii: "S"): return .seconds(value)
        case UInt8(ascii: "m"): return .milliseconds(value)
        case UInt8(ascii: "u"): return .microseconds(value)
        case UInt8(ascii: "n"): return .nanoseconds(value)
        default: return nil
        }
    }

    /// Formats a duration with the finest unit that keeps the value within 8 digits, rounding up
    /// so the server never sees a shorter deadline than the client's. Negative durations become `0n`.
    static func format(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return "0n" }
        // Total nanoseconds, rounded up; saturates for absurdly long timeouts.
        let (secNanos, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        let extra = (attoseconds + 999_999_999) / 1_000_000_000
        let nanos = overflow ? Int64.max : secNanos.addingReportingOverflow(extra).overflow ? Int64.max : secNanos + extra
        let maxValue: Int64 = 99_999_999
        let units: [(Int64, String)] = [(1, "n"), (1_000, "u"), (1_000_000, "m"), (1_000_000_000, "S"), (60_000_000_000, "M"), (3_600_000_000_000, "H")]
        for (scale, unit) in units {
            let value = nanos / scale + (nanos % scale == 0 ? 0 : 1)
            if value <= maxValue { return "\(value)\(unit)" }
        }
        return "\(maxValue)H"
    }
}
