import Testing
@testable import RocketMQStore

@Suite struct CRC32CTests {
    @Test func matchesRFC3720Vectors() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        // RFC 3720 B.4: 32 bytes of zeros, of 0xFF, ascending and descending.
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(CRC32C.checksum((0..<32).reversed().map { UInt8($0) }) == 0x113F_DB5C)
        #expect(CRC32C.checksum([UInt8]()) == 0)
    }

    @Test func piecewiseEqualsWholeAtEveryAlignment() {
        var rng = SystemRandomNumberGenerator()
        let data = (0..<1000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let whole = CRC32C.checksum(data)
        for split in [0, 1, 3, 7, 8, 9, 500, 999, 1000] {
            let a = CRC32C.checksum(data[0..<split])
            #expect(CRC32C.checksum(data[split...], continuing: a) == whole)
        }
        // Unaligned starts exercise the byte-at-a-time prologue.
        for start in 0..<9 {
            let slice = Array(data[start...])
            var bitwise: UInt32 = ~0
            for b in slice {
                bitwise ^= UInt32(b)
                for _ in 0..<8 { bitwise = (bitwise & 1) != 0 ? (bitwise >> 1) ^ 0x82F6_3B78 : bitwise >> 1 }
            }
            #expect(CRC32C.checksum(data[start...]) == ~bitwise)
        }
    }

    @Test("the CPU instruction and the tables agree on every length and alignment")
    func hardwareMatchesTables() {
        var rng = SplitMix64(seed: 3)
        let data = randomBytes(4200, &rng)
        data.withUnsafeBytes { raw in
            for start in 0..<16 {
                for count in [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 100, 1024, 1031, 4096] where start + count <= raw.count {
                    let piece = UnsafeRawBufferPointer(rebasing: raw[start..<(start + count)])
                    for seed: UInt32 in [0, 0xDEAD_BEEF] {
                        #expect(CRC32C.update(seed, piece) == CRC32C.function.tableUpdate(seed, piece), "start \(start), count \(count)")
                    }
                }
            }
        }
        // On this project's machines (x86-64 with SSE4.2), the fast path is the one in use.
        #if arch(x86_64)
        #expect(CRC32C.function.usesHardware)
        #endif
    }
}

/// CRC-32 (IEEE) shares the slicing loop; checked against zlib's values and a bit-wise reference.
@Suite struct CRC32Tests {
    @Test func matchesZlib() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(CRC32.checksum(Array("The quick brown fox jumps over the lazy dog".utf8)) == 0x414F_A339)
        #expect(CRC32.checksum([UInt8]()) == 0)
    }

    @Test func equalsBitwiseReferenceAtEveryLengthAndAlignment() {
        var rng = SystemRandomNumberGenerator()
        let data = (0..<300).map { _ in UInt8.random(in: 0...255, using: &rng) }
        for start in 0..<9 {
            for length in [0, 1, 7, 8, 15, 16, 17, 33, 200] where start + length <= data.count {
                let slice = data[start..<(start + length)]
                var bitwise: UInt32 = ~0
                for b in slice {
                    bitwise ^= UInt32(b)
                    for _ in 0..<8 { bitwise = (bitwise & 1) != 0 ? (bitwise >> 1) ^ 0xEDB8_8320 : bitwise >> 1 }
                }
                #expect(CRC32.checksum(slice) == ~bitwise)
            }
        }
    }

    @Test("the CPU's folding and the tables agree on every length, alignment and seed")
    func hardwareMatchesTables() {
        var rng = SplitMix64(seed: 7)
        let data = randomBytes(9000, &rng)
        data.withUnsafeBytes { raw in
            // Around each boundary of the folding: 16-byte blocks, the four-block start, the
            // 64-byte loop, and the tail after the last whole block.
            let counts = [0, 1, 15, 16, 17, 48, 63, 64, 65, 79, 80, 127, 128, 129, 191, 192, 255, 1024, 1031, 1100, 4096, 8191]
            for start in 0..<16 {
                for count in counts where start + count <= raw.count {
                    let piece = UnsafeRawBufferPointer(rebasing: raw[start..<(start + count)])
                    for seed: UInt32 in [0, 0xFFFF_FFFF, 0x1234_5678] {
                        #expect(CRC32.update(seed, piece) == CRC32.function.tableUpdate(seed, piece), "start \(start), count \(count), seed \(seed)")
                    }
                }
            }
        }
        #if arch(x86_64)
        #expect(CRC32.function.usesHardware)
        #endif
    }

    @Test func longInputMatchesZlibValue() {
        // 1,000 bytes 0, 1, ..., 255, 0, 1, ... : zlib.crc32(bytes(i % 256 for i in range(1000))).
        let data = (0..<1000).map { UInt8($0 % 256) }
        #expect(CRC32.checksum(data) == 0x74E3_FB41)
    }
}
