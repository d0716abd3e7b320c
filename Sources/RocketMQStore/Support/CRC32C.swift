/// CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78), the checksum
/// that frames every CommitLog record.
///
/// Table-driven, slicing-by-8: eight 256-entry tables let the loop consume eight bytes
/// per step. Pure Swift, no allocation per call; the tables are built once.
public enum CRC32C {
    /// The eight lookup tables, `tables[k * 256 + b]`.
    private static let tables: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 {
                c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1
            }
            t[i] = c
        }
        for i in 0..<256 {
            var c = t[i]
            for k in 1..<8 {
                c = t[Int(c & 0xFF)] ^ (c >> 8)
                t[k * 256 + i] = c
            }
        }
        return t
    }()

    /// The CRC-32C of `bytes`, continuing from `crc` (pass the result of a previous call
    /// to checksum data in pieces; start with 0).
    @inlinable
    public static func checksum(_ bytes: some Sequence<UInt8>, continuing crc: UInt32 = 0) -> UInt32 {
        if let result = bytes.withContiguousStorageIfAvailable({ buffer in
            update(crc, UnsafeRawBufferPointer(buffer))
        }) {
            return result
        }
        let copy = Array(bytes)
        return copy.withUnsafeBytes { update(crc, $0) }
    }

    /// The CRC-32C of the raw bytes in `buffer`, continuing from `crc`.
    public static func update(_ crc: UInt32, _ buffer: UnsafeRawBufferPointer) -> UInt32 {
        var c = ~crc
        guard let base = buffer.baseAddress, buffer.count > 0 else { return crc }
        var count = buffer.count
        var p = base
        tables.withUnsafeBufferPointer { tp in
            let t = tp.baseAddress.unsafelyUnwrapped
            // Byte-at-a-time until the pointer is 8-byte aligned.
            while count > 0 && Int(bitPattern: p) & 7 != 0 {
                c = t[Int((c ^ UInt32(p.load(as: UInt8.self))) & 0xFF)] ^ (c >> 8)
                p += 1
                count -= 1
            }
            while count >= 8 {
                let word = UInt64(littleEndian: p.load(as: UInt64.self))
                let lo = UInt32(truncatingIfNeeded: word) ^ c
                let hi = UInt32(truncatingIfNeeded: word >> 32)
                c = t[7 * 256 + Int(lo & 0xFF)]
                    ^ t[6 * 256 + Int((lo >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((lo >> 16) & 0xFF)]
                    ^ t[4 * 256 + Int(lo >> 24)]
                    ^ t[3 * 256 + Int(hi & 0xFF)]
                    ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
                    ^ t[1 * 256 + Int((hi >> 16) & 0xFF)]
                    ^ t[Int(hi >> 24)]
                p += 8
                count -= 8
            }
            while count > 0 {
                c = t[Int((c ^ UInt32(p.load(as: UInt8.self))) & 0xFF)] ^ (c >> 8)
                p += 1
                count -= 1
            }
        }
        return ~c
    }
}
