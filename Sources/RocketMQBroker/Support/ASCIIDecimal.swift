/// Integers as decimal ASCII bytes, as `String(value)` spells them, without building a `String`
/// (the send path writes a delivery time into a record, the consumer journal its offsets).
enum ASCIIDecimal {
    /// The longest `Int64` text, sign included.
    static let maxLength = 20

    /// Writes `String(value)` at the start of `buffer` (at least `maxLength` bytes); returns the length.
    static func write(_ value: Int64, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var magnitude = value.magnitude
        var digits = 0
        repeat {
            buffer[maxLength - 1 - digits] = UInt8(ascii: "0") + UInt8(magnitude % 10)
            magnitude /= 10
            digits += 1
        } while magnitude > 0
        var start = maxLength - digits
        if value < 0 {
            start -= 1
            buffer[start] = UInt8(ascii: "-")
        }
        let length = maxLength - start
        if start > 0 { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: buffer[start..<maxLength])) }
        return length
    }

    /// Appends `String(value)` to `bytes`.
    static func append(_ value: Int64, to bytes: inout [UInt8]) {
        withUnsafeTemporaryAllocation(byteCount: maxLength, alignment: 1) { scratch in
            bytes.append(contentsOf: scratch[0..<write(value, into: scratch)])
        }
    }
}
