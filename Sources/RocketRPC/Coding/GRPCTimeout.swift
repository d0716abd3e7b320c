/// The `grpc-timeout` header: at most 8 ASCII digits followed by a unit
/// (`H` hours, `M` minutes, `S` seconds, `m` millis, `u` micros, `n` nanos). Stateless.
enum GRPCTimeout {
    /// Parses a header value; `nil` when it is not a valid timeout.
    static func parse(_ text: String) -> Duration? {
        var text = text
        return text.withUTF8 { parse(UnsafeRawBufferPointer($0)) }
    }

    /// Parses a header value's bytes (as received: no `String` needed); `nil` when not a valid timeout.
    static func parse(_ utf8: UnsafeRawBufferPointer) -> Duration? {
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
        withFormatted(duration) { String(decoding: $0, as: UTF8.self) }
    }

    /// ``format(_:)``'s bytes, valid during `body`: every call with a deadline sends one, and the
    /// bytes go straight into the request's header block.
    static func withFormatted<R>(_ duration: Duration, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        let (value, unit) = valueAndUnit(duration)
        return withUnsafeTemporaryAllocation(byteCount: 20, alignment: 1) { buffer in
            // Digits from the right, then the unit.
            var end = buffer.count - 1
            buffer[end] = unit
            var rest = value
            repeat {
                end -= 1
                buffer[end] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
            } while rest > 0
            return body(UnsafeRawBufferPointer(rebasing: buffer[end...]))
        }
    }

    private static func valueAndUnit(_ duration: Duration) -> (Int64, UInt8) {
        let (seconds, attoseconds) = duration.components
        if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return (0, UInt8(ascii: "n")) }
        // Total nanoseconds, rounded up; saturates for absurdly long timeouts.
        let (secNanos, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        let extra = (attoseconds + 999_999_999) / 1_000_000_000
        let nanos = overflow ? Int64.max : secNanos.addingReportingOverflow(extra).overflow ? Int64.max : secNanos + extra
        let maxValue: Int64 = 99_999_999
        for (scale, unit) in units {
            let value = nanos / scale + (nanos % scale == 0 ? 0 : 1)
            if value <= maxValue { return (value, unit) }
        }
        return (maxValue, UInt8(ascii: "H"))
    }

    private static let units: [(Int64, UInt8)] = [
        (1, UInt8(ascii: "n")), (1_000, UInt8(ascii: "u")), (1_000_000, UInt8(ascii: "m")),
        (1_000_000_000, UInt8(ascii: "S")), (60_000_000_000, UInt8(ascii: "M")), (3_600_000_000_000, UInt8(ascii: "H")),
    ]
}
