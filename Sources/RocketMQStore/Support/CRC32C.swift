import CCRC32C

/// CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78), the checksum
/// that frames every CommitLog record.
///
/// With the CPU's CRC-32C instruction where there is one (`CCRC32C`: x86-64 SSE4.2, ARMv8
/// CRC), about three times faster than the tables on 1 KiB; the tables were ~4% of a broker's
/// CPU under a SendMessage load. Otherwise table-driven (``CRCSlicer``, slicing-by-16).
public enum CRC32C {
    @usableFromInline static let function = CRCFunction(
        reflectedPolynomial: 0x82F6_3B78,
        hardwareAvailable: rocketmq_crc32c_hardware_available() != 0,
        hardware: { crc, base, count in rocketmq_crc32c_hardware_update(crc, base, count) })

    /// The CRC-32C of `bytes`, continuing from `crc` (pass the result of a previous call
    /// to checksum data in pieces; start with 0).
    @inlinable
    public static func checksum(_ bytes: some Sequence<UInt8>, continuing crc: UInt32 = 0) -> UInt32 {
        function.checksum(bytes, continuing: crc)
    }

    /// The CRC-32C of the raw bytes in `buffer`, continuing from `crc`.
    public static func update(_ crc: UInt32, _ buffer: UnsafeRawBufferPointer) -> UInt32 { function.update(crc, buffer) }
}

/// CRC-32 (IEEE 802.3, zlib's, reflected polynomial 0xEDB88320): what the RocketMQ protocol's
/// message body digest uses.
///
/// With the CPU's help where it has it (`CCRC32C`: x86-64 carry-less multiplication, ARMv8 CRC),
/// otherwise the same slicing-by-16 loop as ``CRC32C``. The digest of every delivered message is
/// one of these: with the tables it was ~3.4% of a broker's CPU serving consumers.
public enum CRC32 {
    @usableFromInline static let function = CRCFunction(
        reflectedPolynomial: 0xEDB8_8320,
        hardwareAvailable: rocketmq_crc32_hardware_available() != 0,
        hardware: { crc, base, count in rocketmq_crc32_hardware_update(crc, base, count) })

    /// The CRC-32 of `bytes`, continuing from `crc` (start with 0).
    @inlinable
    public static func checksum(_ bytes: some Sequence<UInt8>, continuing crc: UInt32 = 0) -> UInt32 {
        function.checksum(bytes, continuing: crc)
    }

    /// The CRC-32 of the raw bytes in `buffer`, continuing from `crc`.
    public static func update(_ crc: UInt32, _ buffer: UnsafeRawBufferPointer) -> UInt32 { function.update(crc, buffer) }
}

/// One 32-bit CRC: the CPU's version where it has one, else tables. What ``CRC32C`` and
/// ``CRC32`` are made of.
@usableFromInline
struct CRCFunction: Sendable {
    let slicer: CRCSlicer
    /// The CPU's version of `update` (nil: none on this CPU).
    let hardware: (@Sendable (UInt32, UnsafeRawPointer, Int) -> UInt32)?

    init(reflectedPolynomial: UInt32, hardwareAvailable: Bool, hardware: @escaping @Sendable (UInt32, UnsafeRawPointer, Int) -> UInt32) {
        slicer = CRCSlicer(reflectedPolynomial: reflectedPolynomial)
        self.hardware = hardwareAvailable ? hardware : nil
    }

    /// Whether `update` uses the CPU's instructions.
    var usesHardware: Bool { hardware != nil }

    @inlinable
    func checksum(_ bytes: some Sequence<UInt8>, continuing crc: UInt32) -> UInt32 {
        if let result = bytes.withContiguousStorageIfAvailable({ buffer in
            update(crc, UnsafeRawBufferPointer(buffer))
        }) {
            return result
        }
        let copy = Array(bytes)
        return copy.withUnsafeBytes { update(crc, $0) }
    }

    @usableFromInline
    func update(_ crc: UInt32, _ buffer: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return crc }
        if let hardware { return hardware(crc, base, buffer.count) }
        return slicer.update(crc, buffer)
    }

    /// `update` with the tables, whatever the CPU (tests compare the two).
    func tableUpdate(_ crc: UInt32, _ buffer: UnsafeRawBufferPointer) -> UInt32 {
        slicer.update(crc, buffer)
    }
}

/// Slicing-by-16 lookup tables for one reflected 32-bit CRC polynomial, and the loop over them.
@usableFromInline
struct CRCSlicer: Sendable {
    /// Sixteen tables of 256 entries, `tables[k * 256 + b]`.
    private let tables: [UInt32]

    init(reflectedPolynomial polynomial: UInt32) {
        var t = [UInt32](repeating: 0, count: 16 * 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 {
                c = (c & 1) != 0 ? (c >> 1) ^ polynomial : c >> 1
            }
            t[i] = c
        }
        for i in 0..<256 {
            var c = t[i]
            for k in 1..<16 {
                c = t[Int(c & 0xFF)] ^ (c >> 8)
                t[k * 256 + i] = c
            }
        }
        tables = t
    }

    /// The CRC of the raw bytes in `buffer`, continuing from `crc`.
    @usableFromInline
    func update(_ crc: UInt32, _ buffer: UnsafeRawBufferPointer) -> UInt32 {
        var c = ~crc
        guard let base = buffer.baseAddress, buffer.count > 0 else { return crc }
        var count = buffer.count
        var p = base
        tables.withUnsafeBufferPointer { tp in
            guard let t = tp.baseAddress else { return }
            @inline(__always) func byte(_ v: UInt32, _ table: Int) -> UInt32 { t[table &* 256 &+ Int(v & 0xFF)] }
            // Byte-at-a-time until the pointer is 8-byte aligned.
            while count > 0 && Int(bitPattern: p) & 7 != 0 {
                c = byte(c ^ UInt32(p.load(as: UInt8.self)), 0) ^ (c >> 8)
                p += 1
                count -= 1
            }
            while count >= 16 {
                let a = UInt64(littleEndian: p.load(as: UInt64.self))
                let b = UInt64(littleEndian: p.load(fromByteOffset: 8, as: UInt64.self))
                let w0 = UInt32(truncatingIfNeeded: a) ^ c
                let w1 = UInt32(truncatingIfNeeded: a >> 32)
                let w2 = UInt32(truncatingIfNeeded: b)
                let w3 = UInt32(truncatingIfNeeded: b >> 32)
                c = byte(w0, 15) ^ byte(w0 >> 8, 14) ^ byte(w0 >> 16, 13) ^ byte(w0 >> 24, 12)
                    ^ byte(w1, 11) ^ byte(w1 >> 8, 10) ^ byte(w1 >> 16, 9) ^ byte(w1 >> 24, 8)
                    ^ byte(w2, 7) ^ byte(w2 >> 8, 6) ^ byte(w2 >> 16, 5) ^ byte(w2 >> 24, 4)
                    ^ byte(w3, 3) ^ byte(w3 >> 8, 2) ^ byte(w3 >> 16, 1) ^ byte(w3 >> 24, 0)
                p += 16
                count -= 16
            }
            if count >= 8 {
                let a = UInt64(littleEndian: p.load(as: UInt64.self))
                let w0 = UInt32(truncatingIfNeeded: a) ^ c
                let w1 = UInt32(truncatingIfNeeded: a >> 32)
                c = byte(w0, 7) ^ byte(w0 >> 8, 6) ^ byte(w0 >> 16, 5) ^ byte(w0 >> 24, 4)
                    ^ byte(w1, 3) ^ byte(w1 >> 8, 2) ^ byte(w1 >> 16, 1) ^ byte(w1 >> 24, 0)
                p += 8
                count -= 8
            }
            while count > 0 {
                c = byte(c ^ UInt32(p.load(as: UInt8.self)), 0) ^ (c >> 8)
                p += 1
                count -= 1
            }
        }
        return ~c
    }
}
