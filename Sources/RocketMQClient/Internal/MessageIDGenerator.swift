#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Producer-side message ids in the RocketMQ 5 layout, 34 upper-case hex digits:
/// `01` (the id version), 6 bytes naming this process's host (random per process, as the
/// official clients fall back to when they find no MAC address), the low 2 bytes of the process
/// id, 4 bytes of seconds since 2021-01-01T00:00:00Z and a 4-byte sequence. Ids are unique per
/// process without a system call or a random draw per message.
public enum MessageIDGenerator {
    /// The first 18 hex digits (version, host, process id), the same for every id of this
    /// process: formatted once.
    private static let prefixDigits: [UInt8] = {
        var rng = SystemRandomNumberGenerator()
        var bytes: [UInt8] = [0x01]
        for _ in 0..<6 { bytes.append(rng.next()) }
        let pid = UInt16(truncatingIfNeeded: getpid())
        bytes.append(UInt8(pid >> 8))
        bytes.append(UInt8(pid & 0xFF))
        return bytes.flatMap { [hexDigit($0 >> 4), hexDigit($0 & 0x0F)] }
    }()
    private static let sequence = Atomic<UInt32>(0)
    /// 2021-01-01T00:00:00Z in seconds since the Unix epoch.
    private static let epoch2021: Int = 1_609_459_200

    /// The next id.
    public static func next() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let seconds = UInt32(truncatingIfNeeded: now.tv_sec - epoch2021)
        let counter = sequence.add(1, ordering: .relaxed).newValue
        return String(unsafeUninitializedCapacity: 34) { out in
            let prefix = prefixDigits.withUnsafeBufferPointer { prefix in
                UnsafeMutableBufferPointer(rebasing: out[..<prefix.count]).initialize(fromContentsOf: prefix)
            }
            // Then seconds and sequence, 8 digits each, most significant first.
            for shift in stride(from: 28, through: 0, by: -4) {
                out[prefix + 7 - shift / 4] = hexDigit(UInt8(truncatingIfNeeded: seconds >> UInt32(shift)) & 0x0F)
                out[prefix + 15 - shift / 4] = hexDigit(UInt8(truncatingIfNeeded: counter >> UInt32(shift)) & 0x0F)
            }
            return prefix + 16
        }
    }

    @inline(__always)
    private static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "A") + nibble - 10
    }
}
