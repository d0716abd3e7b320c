import Testing
@testable import RocketMQStore

@Suite struct RecordCodecTests {
    @Test func randomRecordsRoundTrip() throws {
        var rng = SplitMix64(seed: 42)
        for i in 0..<300 {
            var props = [String: String]()
            for p in 0..<Int.random(in: 0...6, using: &rng) {
                props["k\(p)-\(i)"] = String(repeating: "v", count: Int.random(in: 0...40, using: &rng)) + "é✓"
            }
            let m = MessageToAppend(
                topic: "topic-\(i % 7)", queueId: Int32.random(in: 0...1000, using: &rng),
                body: randomBytes(Int.random(in: 0...3000, using: &rng), &rng), properties: props,
                flags: Int32.random(in: .min ... .max, using: &rng), bornTimestamp: Int64.random(in: 0...Int64.max, using: &rng),
                bornHost: "10.1.2.3:\(i)", reconsumeTimes: Int32(i), preparedTransactionOffset: Int64(i) * 1000)
            var bytes = try RecordCodec.encode(m, storeHost: "127.0.0.1:10911")
            bytes.withUnsafeMutableBytes { RecordCodec.seal($0, queueOffset: Int64(i), physicalOffset: Int64(i) * 4096, storeTimestamp: 123 + Int64(i)) }
            let decoded = try bytes.withUnsafeBytes { try RecordCodec.decode($0, expectedOffset: Int64(i) * 4096) }
            #expect(decoded.topic == m.topic)
            #expect(decoded.queueId == m.queueId)
            #expect(decoded.body == m.body)
            #expect(decoded.properties == m.properties)
            #expect(decoded.flags == m.flags)
            #expect(decoded.bornTimestamp == m.bornTimestamp)
            #expect(decoded.storeTimestamp == 123 + Int64(i))
            #expect(decoded.bornHost == m.bornHost)
            #expect(decoded.storeHost == "127.0.0.1:10911")
            #expect(decoded.reconsumeTimes == m.reconsumeTimes)
            #expect(decoded.preparedTransactionOffset == m.preparedTransactionOffset)
            #expect(decoded.queueOffset == Int64(i))
            #expect(decoded.physicalOffset == Int64(i) * 4096)
            #expect(Int(decoded.storeSize) == bytes.count)
        }
    }

    /// The records' byte arrays: exactly `count` bytes, as `body` wrote them, for any size.
    @Test func byteArraysHoldWhatTheirWriterWrote() {
        for count in [0, 1, 15, 16, 4095, 70_000] {
            let bytes = ByteArray.make(count: count) { buffer in
                for i in buffer.indices { buffer[i] = UInt8(truncatingIfNeeded: i &* 7) }
            }
            #expect(bytes.count == count)
            #expect(bytes.indices.allSatisfy { bytes[$0] == UInt8(truncatingIfNeeded: $0 &* 7) })
        }
    }

    @Test func everyFlippedByteIsDetected() throws {
        let m = message(body: Array("hello, world".utf8), tag: "t", keys: "a b", uniq: "u1")
        var bytes = try RecordCodec.encode(m, storeHost: "127.0.0.1:1")
        bytes.withUnsafeMutableBytes { RecordCodec.seal($0, queueOffset: 5, physicalOffset: 0, storeTimestamp: 9) }
        for i in bytes.indices {
            var damaged = bytes
            damaged[i] ^= 0x40
            #expect(throws: StoreError.self, "flip at byte \(i) not detected") {
                try damaged.withUnsafeBytes { _ = try RecordCodec.decode($0, expectedOffset: 0) }
            }
        }
    }

    @Test func rejectsOversizedFields() {
        #expect(throws: StoreError.self) { try RecordCodec.encode(MessageToAppend(topic: "", queueId: 0, body: []), storeHost: "h:1") }
        #expect(throws: StoreError.self) { try RecordCodec.encode(MessageToAppend(topic: String(repeating: "t", count: 256), queueId: 0, body: []), storeHost: "h:1") }
        let longHost = String(repeating: "h", count: 300)
        #expect(throws: StoreError.self) { try RecordCodec.encode(MessageToAppend(topic: "t", queueId: 0, body: [], bornHost: longHost), storeHost: "h:1") }
    }

    @Test func messageIdEncodesHostAndOffset() {
        let id = MessageID.make(storeHost: "127.0.0.1:10911", physicalOffset: 0x1234)
        #expect(id == "7F00000100002A9F0000000000001234")
        #expect(MessageID.physicalOffset(of: id) == 0x1234)
    }
}

@Suite("Records encoded from bytes")
struct RecordFromBytesTests {
    /// Encodes `message` through the byte-piece encoder, as a protocol layer would.
    func encodeFromBytes(_ message: MessageToAppend, storeHost: String) throws -> [UInt8] {
        // Keep every piece's storage alive for the call.
        let keys = message.properties.keys.map { Array($0.utf8) }
        let values = message.properties.keys.map { Array(message.properties[$0]!.utf8) }
        let topic = Array(message.topic.utf8), born = Array(message.bornHost.utf8), store = Array(storeHost.utf8)
        return try topic.withUnsafeBytes { topic in
            try born.withUnsafeBytes { born in
                try store.withUnsafeBytes { store in
                    try message.body.withUnsafeBytes { body in
                        var pieces: [MessagePropertyBytes] = []
                        func collect(_ i: Int) throws -> [UInt8] {
                            if i == keys.count {
                                return try pieces.withUnsafeMutableBufferPointer { properties in
                                    try RecordCodec.encode(
                                        topic: topic, queueId: message.queueId, bornTimestamp: message.bornTimestamp,
                                        bornHost: born, storeHost: store, properties: properties, body: body)
                                }
                            }
                            return try keys[i].withUnsafeBytes { k in
                                try values[i].withUnsafeBytes { v in
                                    pieces.append(MessagePropertyBytes(key: k, value: v))
                                    return try collect(i + 1)
                                }
                            }
                        }
                        return try collect(0)
                    }
                }
            }
        }
    }

    @Test("a record encoded from byte pieces is byte for byte the one a MessageToAppend gives")
    func sameBytesAsMessageToAppend() throws {
        var rng = SplitMix64(seed: 7)
        for i in 0..<200 {
            var props = [String: String]()
            let names = ["TAGS", "KEYS", "UNIQ_KEY", "__MESSAGE_TYPE", "__SHARDINGKEY", "A", "zz", "a-b", "Key", "_x"]
            for _ in 0..<Int.random(in: 0...8, using: &rng) {
                props[names.randomElement(using: &rng)!] = String(repeating: "v", count: Int.random(in: 0...20, using: &rng)) + (i % 3 == 0 ? "é✓" : "")
            }
            let m = MessageToAppend(
                topic: "topic-\(i % 5)", queueId: Int32(i % 8), body: randomBytes(Int.random(in: 1...2000, using: &rng), &rng),
                properties: props, bornTimestamp: Int64(i) * 1_000_003, bornHost: "10.0.0.\(i % 250):\(i)")
            let expected = try RecordCodec.encode(m, storeHost: "127.0.0.1:10911")
            #expect(try encodeFromBytes(m, storeHost: "127.0.0.1:10911") == expected)
        }
    }

    @Test("dispatch keys read from the record match the decoded message's tag, keys and unique id")
    func dispatchKeysMatchDecodedMessage() throws {
        let cases: [[String: String]] = [
            [:],
            ["TAGS": "t1"],
            ["TAGS": ""],
            ["KEYS": "a b  c ", "UNIQ_KEY": "u-1"],
            ["KEYS": " ", "UNIQ_KEY": ""],
            ["KEYS": "clé a\u{301} \u{301}b x", "TAGS": "é"],
            ["KEYS": "k", "TAGS": "x", "UNIQ_KEY": "id", "other": "KEYS"],
        ]
        for props in cases {
            let m = MessageToAppend(topic: "orders", queueId: 1, body: [1, 2, 3], properties: props)
            var bytes = try RecordCodec.encode(m, storeHost: "127.0.0.1:1")
            bytes.withUnsafeMutableBytes { RecordCodec.seal($0, queueOffset: 0, physicalOffset: 0, storeTimestamp: 1) }
            let decoded = try bytes.withUnsafeBytes { try RecordCodec.decode($0, expectedOffset: 0) }
            var hashes = decoded.keys.map { IndexService.hash(IndexService.key(topic: decoded.topic, key: $0)) }
            if let u = decoded.uniqueId { hashes.append(IndexService.hash(IndexService.uniqueKey(u))) }
            let keys = bytes.withUnsafeBytes { RecordCodec.dispatchKeys($0) }
            #expect(keys == RecordCodec.DispatchKeys(tagsHash: TagHash.of(decoded.tags), indexHashes: hashes), "\(props)")
        }
    }
}
