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

    /// Formats a duration rounded up to three significant digits but never coarser than a
    /// millisecond, in the coarsest unit that holds that value exactly (30 s less a few
    /// microseconds is `30S`), so the server never sees a shorter deadline than the client's, and
    /// at most 1% and 1 ms longer (a broker ends a long poll 200 ms before the deadline it was
    /// given: a coarser rounding would eat into that). Negative durations become `0n`.
    ///
    /// Why round: a call's remaining time differs in its last digits from every other call's, and
    /// HPACK adds each new `grpc-timeout` value to both ends' dynamic tables: every request then
    /// paid a Huffman-coded literal, an insertion and an eviction on each side, and the stream of
    /// new entries pushed the connection's fixed headers out of the table. Rounded, calls with
    /// the same timeout send one indexed byte. (The client enforces its own deadline exactly.)
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
        if nanos <= Int64.max / 4 {
            let rounded = roundedUp(nanos)
            for (scale, unit) in units.reversed() where rounded % scale == 0 && rounded / scale <= maxValue {
                return (rounded / scale, unit)
            }
        }
        for (scale, unit) in units {
            let value = nanos / scale + (nanos % scale == 0 ? 0 : 1)
            if value <= maxValue { return (value, unit) }
        }
        return (maxValue, UInt8(ascii: "H"))
    }

    /// `nanos` rounded up to its three most significant decimal digits, or to the millisecond
    /// if that is finer (positive, at most a quarter of `Int64.max`).
    private static func roundedUp(_ nanos: Int64) -> Int64 {
        var scale: Int64 = 1
        while nanos / scale >= 1_000, scale < 1_000_000 { scale *= 10 }
        return (nanos + scale - 1) / scale * scale
    }

    private static let units: [(Int64, UInt8)] = [
        (1, UInt8(ascii: "n")), (1_000, UInt8(ascii: "u")), (1_000_000, UInt8(ascii: "m")),
        (1_000_000_000, UInt8(ascii: "S")), (60_000_000_000, UInt8(ascii: "M")), (3_600_000_000_000, UInt8(ascii: "H")),
    ]
}
