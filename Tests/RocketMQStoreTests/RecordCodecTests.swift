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
