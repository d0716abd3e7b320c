#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The on-disk format of one CommitLog record, little-endian:
///
/// ```
///  0 totalSize u32   4 magic u32   8 recordCRC u32   12 bodyCRC u32
/// 16 queueId i32    20 flags i32  24 queueOffset i64  32 physicalOffset i64
/// 40 bornTimestamp i64  48 storeTimestamp i64  56 reconsumeTimes i32
/// 60 preparedTransactionOffset i64  68 topicLength u16  70 bornHostLength u8
/// 71 storeHostLength u8  72 propertiesLength u32  76 bodyLength u32
/// 80 topic, bornHost, storeHost, properties (u16 len key, u16 len value)*, body
/// ```
///
/// `bodyCRC` is the CRC-32C of the body; `recordCRC` covers bytes 12 up to the body, so
/// the two together check every byte but the first twelve (which the size and magic
/// checks cover). Keeping the body out of `recordCRC` lets the body be checksummed outside
/// the writer's lock, and only ~100 header bytes inside it.
///
/// A segment's unused tail starts with an end-of-segment marker: `totalSize` = bytes left
/// in the segment, `magic` = `blankMagic`.
enum RecordCodec {
    static let messageMagic: UInt32 = 0xA3C1_5E01
    static let blankMagic: UInt32 = 0xA3C1_5EFF
    static let headerSize = 80
    /// The smallest space an end-of-segment marker needs.
    static let blankSize = 8

    /// Encodes `message` with zero offsets and store timestamp; `seal` fills those in.
    /// One allocation: the record itself (the hot path of every append).
    static func encode(_ message: MessageToAppend, storeHost: String) throws(StoreError) -> [UInt8] {
        let topicCount = message.topic.utf8.count
        let bornCount = message.bornHost.utf8.count
        let storeCount = storeHost.utf8.count
        // 255 bytes: the topic names a ConsumeQueue directory.
        guard topicCount > 0, topicCount <= 255 else { throw .invalidMessage("topic must be 1...255 UTF-8 bytes") }
        guard bornCount <= 255, storeCount <= 255 else { throw .invalidMessage("host strings must be at most 255 bytes") }
        let keys = message.properties.count > 1 ? message.properties.keys.sorted() : Array(message.properties.keys)
        var propsCount = 0
        for key in keys {
            let k = key.utf8.count
            let v = message.properties[key]?.utf8.count ?? 0
            guard k <= Int(UInt16.max), v <= Int(UInt16.max) else {
                throw .invalidMessage("property \(key) is longer than 65535 bytes")
            }
            propsCount += 4 + k + v
        }
        let bodyCount = message.body.count
        let total = headerSize + topicCount + bornCount + storeCount + propsCount + bodyCount
        guard total <= Int(Int32.max) else { throw .messageTooLarge(size: total, limit: Int(Int32.max)) }
        let bodyCRC = CRC32C.checksum(message.body)
        return ByteArray.make(count: total) { buffer in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            writeHeader(raw, total: total, bodyCRC: bodyCRC, queueId: message.queueId, flags: message.flags,
                        bornTimestamp: message.bornTimestamp, reconsumeTimes: message.reconsumeTimes,
                        preparedTransactionOffset: message.preparedTransactionOffset, topicCount: topicCount,
                        bornHostCount: bornCount, storeHostCount: storeCount, propertiesCount: propsCount, bodyCount: bodyCount)
            var at = headerSize
            func put(_ s: String) {
                for b in s.utf8 { raw[at] = b; at += 1 }
            }
            func put16(_ n: Int) {
                raw.storeBytes(of: UInt16(n).littleEndian, toByteOffset: at, as: UInt16.self)
                at += 2
            }
            put(message.topic)
            put(message.bornHost)
            put(storeHost)
            for key in keys {
                let value = message.properties[key] ?? ""
                put16(key.utf8.count)
                put(key)
                put16(value.utf8.count)
                put(value)
            }
            message.body.withUnsafeBytes { src in
                if let base = src.baseAddress, let dst = raw.baseAddress, bodyCount > 0 {
                    (dst + at).copyMemory(from: base, byteCount: bodyCount)
                }
            }
        }
    }

    /// The fixed 80 bytes, with zero offsets, store time and record CRC (`seal` fills those in).
    private static func writeHeader(
        _ raw: UnsafeMutableRawBufferPointer, total: Int, bodyCRC: UInt32, queueId: Int32, flags: Int32,
        bornTimestamp: Int64, reconsumeTimes: Int32, preparedTransactionOffset: Int64, topicCount: Int,
        bornHostCount: Int, storeHostCount: Int, propertiesCount: Int, bodyCount: Int
    ) {
        raw.storeBytes(of: UInt32(total).littleEndian, toByteOffset: 0, as: UInt32.self)
        raw.storeBytes(of: messageMagic.littleEndian, toByteOffset: 4, as: UInt32.self)
        raw.storeBytes(of: UInt32(0), toByteOffset: 8, as: UInt32.self)
        raw.storeBytes(of: bodyCRC.littleEndian, toByteOffset: 12, as: UInt32.self)
        raw.storeBytes(of: queueId.littleEndian, toByteOffset: 16, as: Int32.self)
        raw.storeBytes(of: flags.littleEndian, toByteOffset: 20, as: Int32.self)
        raw.storeBytes(of: Int64(0), toByteOffset: 24, as: Int64.self)
        raw.storeBytes(of: Int64(0), toByteOffset: 32, as: Int64.self)
        raw.storeBytes(of: bornTimestamp.littleEndian, toByteOffset: 40, as: Int64.self)
        raw.storeBytes(of: Int64(0), toByteOffset: 48, as: Int64.self)
        raw.storeBytes(of: reconsumeTimes.littleEndian, toByteOffset: 56, as: Int32.self)
        raw.storeBytes(of: preparedTransactionOffset.littleEndian, toByteOffset: 60, as: Int64.self)
        raw.storeBytes(of: UInt16(topicCount).littleEndian, toByteOffset: 68, as: UInt16.self)
        raw.storeBytes(of: UInt8(bornHostCount), toByteOffset: 70, as: UInt8.self)
        raw.storeBytes(of: UInt8(storeHostCount), toByteOffset: 71, as: UInt8.self)
        raw.storeBytes(of: UInt32(propertiesCount).littleEndian, toByteOffset: 72, as: UInt32.self)
        raw.storeBytes(of: UInt32(bodyCount).littleEndian, toByteOffset: 76, as: UInt32.self)
    }

    /// Encodes a message given as UTF-8 pieces, as `encode(_:storeHost:)` does for a
    /// `MessageToAppend` (byte for byte, when the keys are ASCII): properties are written in
    /// key byte order, which `properties` is sorted into. Duplicate keys are the caller's bug.
    static func encode(
        topic: UnsafeRawBufferPointer, queueId: Int32, bornTimestamp: Int64, bornHost: UnsafeRawBufferPointer,
        storeHost: UnsafeRawBufferPointer, properties: UnsafeMutableBufferPointer<MessagePropertyBytes>,
        body: UnsafeRawBufferPointer
    ) throws(StoreError) -> [UInt8] {
        guard topic.count > 0, topic.count <= 255 else { throw .invalidMessage("topic must be 1...255 UTF-8 bytes") }
        guard bornHost.count <= 255, storeHost.count <= 255 else { throw .invalidMessage("host strings must be at most 255 bytes") }
        var sorted = properties  // the same memory: sorts the caller's buffer in place
        sorted.sort { $0.key.lexicographicallyPrecedes($1.key) }
        var propsCount = 0
        for property in properties {
            guard property.key.count <= Int(UInt16.max), property.value.count <= Int(UInt16.max) else {
                throw .invalidMessage("property \(String(decoding: property.key, as: UTF8.self)) is longer than 65535 bytes")
            }
            propsCount += 4 + property.key.count + property.value.count
        }
        let total = headerSize + topic.count + bornHost.count + storeHost.count + propsCount + body.count
        guard total <= Int(Int32.max) else { throw .messageTooLarge(size: total, limit: Int(Int32.max)) }
        let bodyCRC = CRC32C.update(0, body)
        return ByteArray.make(count: total) { buffer in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            writeHeader(raw, total: total, bodyCRC: bodyCRC, queueId: queueId, flags: 0, bornTimestamp: bornTimestamp,
                        reconsumeTimes: 0, preparedTransactionOffset: 0, topicCount: topic.count,
                        bornHostCount: bornHost.count, storeHostCount: storeHost.count, propertiesCount: propsCount,
                        bodyCount: body.count)
            var at = headerSize
            func put(_ bytes: UnsafeRawBufferPointer) {
                guard let source = bytes.baseAddress, let base = raw.baseAddress, bytes.count > 0 else { return }
                (base + at).copyMemory(from: source, byteCount: bytes.count)
                at += bytes.count
            }
            func put16(_ n: Int) {
                raw.storeBytes(of: UInt16(n).littleEndian, toByteOffset: at, as: UInt16.self)
                at += 2
            }
            put(topic)
            put(bornHost)
            put(storeHost)
            for property in properties {
                put16(property.key.count)
                put(property.key)
                put16(property.value.count)
                put(property.value)
            }
            put(body)
        }
    }

    /// Writes the positions and store time into an encoded record and computes its record CRC.
    static func seal(_ raw: UnsafeMutableRawBufferPointer, queueOffset: Int64, physicalOffset: Int64, storeTimestamp: Int64) {
        raw.storeBytes(of: queueOffset.littleEndian, toByteOffset: 24, as: Int64.self)
        raw.storeBytes(of: physicalOffset.littleEndian, toByteOffset: 32, as: Int64.self)
        raw.storeBytes(of: storeTimestamp.littleEndian, toByteOffset: 48, as: Int64.self)
        let bodyLength = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 76, as: UInt32.self)))
        let crc = CRC32C.update(0, UnsafeRawBufferPointer(rebasing: raw[12..<(raw.count - bodyLength)]))
        raw.storeBytes(of: crc.littleEndian, toByteOffset: 8, as: UInt32.self)
    }

    /// Writes an end-of-segment marker of `size` bytes (only its first 8 bytes matter).
    static func blankMarker(size: Int) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: blankSize)
        b.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: UInt32(size).littleEndian, toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: blankMagic.littleEndian, toByteOffset: 4, as: UInt32.self)
        }
        return b
    }

    /// What the first 8 bytes at a position say.
    enum Peek: Equatable {
        case message(size: Int)
        case endOfSegment(size: Int)
        /// Zeros: nothing was ever written here.
        case empty
        case invalid
    }

    static func peek(_ raw: UnsafeRawBufferPointer) -> Peek {
        guard raw.count >= 8 else { return .invalid }
        let size = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt32.self)))
        let magic = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        if size == 0 && magic == 0 { return .empty }
        if magic == messageMagic && size >= headerSize { return .message(size: size) }
        if magic == blankMagic && size >= blankSize { return .endOfSegment(size: size) }
        return .invalid
    }

    /// The fields dispatch needs (ConsumeQueue entry and index keys), without the body.
    struct DispatchInfo: Sendable {
        var topic: String
        var queueId: Int32
        var queueOffset: Int64
        var physicalOffset: Int64
        var size: Int32
        var storeTimestamp: Int64
        var keys: DispatchKeys
    }

    /// What dispatch derives from a record's properties: the ConsumeQueue tag hash and the
    /// IndexFile key hashes (`IndexService.keyHashes`).
    struct DispatchKeys: Sendable, Equatable {
        /// `TagHash.of(tags)`.
        var tagsHash: Int64
        /// One per KEYS entry (`topic#key`), then the UNIQ_KEY's if there is one; empty when
        /// neither property is there.
        var indexHashes: [UInt32]
    }

    /// Reads the TAGS, KEYS and UNIQ_KEY properties of a record whose lengths were checked
    /// (by `encode` or `decode`) straight from its bytes: no `String`, no dictionary.
    static func dispatchKeys(_ raw: UnsafeRawBufferPointer) -> DispatchKeys {
        let topicLen = Int(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 68, as: UInt16.self)))
        let propsLen = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 72, as: UInt32.self)))
        let topic = UnsafeRawBufferPointer(rebasing: raw[headerSize..<(headerSize + topicLen)])
        var p = headerSize + topicLen + Int(raw[70]) + Int(raw[71])
        let end = p + propsLen
        var tags: Range<Int>?
        var keys: Range<Int>?
        var unique: Range<Int>?
        while p + 2 <= end {
            let kl = Int(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: p, as: UInt16.self)))
            let key = (p + 2)..<(p + 2 + kl)
            p = key.upperBound
            guard p + 2 <= end else { break }
            let vl = Int(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: p, as: UInt16.self)))
            let value = (p + 2)..<(p + 2 + vl)
            p = value.upperBound
            guard p <= end else { break }
            // Later entries win, as in `decode`'s dictionary.
            // Compared with `memcmp`: the generic `elementsEqual` took ~240 instructions a record.
            let name = UnsafeRawBufferPointer(rebasing: raw[key])
            switch kl {
            case 4 where name.hasBytes(of: MessageProperty.tagsKey): tags = value
            case 4 where name.hasBytes(of: MessageProperty.keysKey): keys = value
            case 8 where name.hasBytes(of: MessageProperty.uniqueKeyKey): unique = value
            default: break
            }
        }
        var hashes: [UInt32] = []
        if let keys {
            IndexService.forEachKey(UnsafeRawBufferPointer(rebasing: raw[keys])) { key in
                hashes.append(IndexService.keyHash(topic: topic, key: key))
            }
        }
        if let unique { hashes.append(IndexService.uniqueKeyHash(UnsafeRawBufferPointer(rebasing: raw[unique]))) }
        let tagsHash = tags.map { TagHash.of(UnsafeRawBufferPointer(rebasing: raw[$0])) } ?? 0
        return DispatchKeys(tagsHash: tagsHash, indexHashes: hashes)
    }

    /// Checks and decodes a whole record. `expectedOffset`, when given, must match the
    /// physical offset stored inside (catches a ConsumeQueue entry pointing at the wrong place).
    static func decode(_ raw: UnsafeRawBufferPointer, expectedOffset: Int64?, includeBody: Bool = true) throws(StoreError) -> StoredMessage {
        let at = expectedOffset ?? -1
        guard raw.count >= headerSize else { throw .corruptRecord(physicalOffset: at, reason: "short record (\(raw.count) bytes)") }
        func u16(_ o: Int) -> Int { Int(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt16.self))) }
        func u32(_ o: Int) -> UInt32 { UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
        func i32(_ o: Int) -> Int32 { Int32(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: Int32.self)) }
        func i64(_ o: Int) -> Int64 { Int64(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: Int64.self)) }
        let total = Int(u32(0))
        guard u32(4) == messageMagic else { throw .corruptRecord(physicalOffset: at, reason: "bad magic") }
        let topicLen = u16(68)
        let bornLen = Int(raw[70])
        let storeLen = Int(raw[71])
        let propsLen = Int(u32(72))
        let bodyLen = Int(u32(76))
        guard total == raw.count, headerSize + topicLen + bornLen + storeLen + propsLen + bodyLen == total else {
            throw .corruptRecord(physicalOffset: at, reason: "inconsistent lengths")
        }
        let bodyStart = total - bodyLen
        let recordCRC = CRC32C.update(0, UnsafeRawBufferPointer(rebasing: raw[12..<bodyStart]))
        guard recordCRC == u32(8) else { throw .corruptRecord(physicalOffset: at, reason: "record CRC mismatch") }
        let physicalOffset = i64(32)
        if let expectedOffset, physicalOffset != expectedOffset {
            throw .corruptRecord(physicalOffset: at, reason: "record claims offset \(physicalOffset)")
        }
        let body = UnsafeRawBufferPointer(rebasing: raw[bodyStart..<total])
        if includeBody {
            guard CRC32C.update(0, body) == u32(12) else {
                throw .corruptRecord(physicalOffset: at, reason: "body CRC mismatch")
            }
        }
        var p = headerSize
        func string(_ n: Int) -> String {
            defer { p += n }
            return String(decoding: UnsafeRawBufferPointer(rebasing: raw[p..<(p + n)]), as: UTF8.self)
        }
        let topic = string(topicLen)
        let bornHost = string(bornLen)
        let storeHost = string(storeLen)
        let propsEnd = p + propsLen
        // Counted first: a dictionary grown one property at a time rehashed itself at every
        // power of two (~1/3 of decoding a record with a handful of properties).
        var entries = 0
        var q = p
        while q + 2 <= propsEnd {
            let kl = u16(q)
            guard q + 2 + kl + 2 <= propsEnd else { break }
            q += 2 + kl + 2 + u16(q + 2 + kl)
            entries += 1
        }
        var props = [String: String](minimumCapacity: min(entries, 64))
        while p + 2 <= propsEnd {
            let kl = u16(p)
            p += 2
            guard p + kl + 2 <= propsEnd else { throw .corruptRecord(physicalOffset: at, reason: "bad properties") }
            let k = string(kl)
            let vl = u16(p)
            p += 2
            guard p + vl <= propsEnd else { throw .corruptRecord(physicalOffset: at, reason: "bad properties") }
            props[k] = string(vl)
        }
        guard p == propsEnd else { throw .corruptRecord(physicalOffset: at, reason: "bad properties") }
        return StoredMessage(
            topic: topic, queueId: i32(16), body: includeBody ? Array(body) : [], properties: props,
            flags: i32(20), bornTimestamp: i64(40), storeTimestamp: i64(48), bornHost: bornHost,
            storeHost: storeHost, reconsumeTimes: i32(56), preparedTransactionOffset: i64(60),
            physicalOffset: physicalOffset, queueOffset: i64(24), storeSize: Int32(total))
    }

    /// Verifies both CRCs and extracts what dispatch needs.
    static func dispatchInfo(_ raw: UnsafeRawBufferPointer, expectedOffset: Int64) throws(StoreError) -> DispatchInfo {
        let bodyLen = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 76, as: UInt32.self)))
        guard raw.count >= headerSize, bodyLen <= raw.count - headerSize else {
            throw .corruptRecord(physicalOffset: expectedOffset, reason: "inconsistent lengths")
        }
        let body = UnsafeRawBufferPointer(rebasing: raw[(raw.count - bodyLen)...])
        guard CRC32C.update(0, body) == UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 12, as: UInt32.self)) else {
            throw .corruptRecord(physicalOffset: expectedOffset, reason: "body CRC mismatch")
        }
        let m = try decode(raw, expectedOffset: expectedOffset, includeBody: false)
        return DispatchInfo(
            topic: m.topic, queueId: m.queueId, queueOffset: m.queueOffset, physicalOffset: m.physicalOffset,
            size: m.storeSize, storeTimestamp: m.storeTimestamp, keys: dispatchKeys(raw))
    }
}

extension UnsafeRawBufferPointer {
    /// Whether these bytes are exactly `literal`'s UTF-8.
    func hasBytes(of literal: StaticString) -> Bool {
        guard count == literal.utf8CodeUnitCount else { return false }
        guard count > 0, let base = baseAddress else { return true }
        return memcmp(base, literal.utf8Start, count) == 0
    }
}
