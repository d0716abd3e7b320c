import RocketMQAPI
@testable import RocketMQStore
import Testing
@testable import RocketMQBroker

/// A stored message as delivered: its body digest (CRC-32, IEEE, as eight upper-case hex digits,
/// which the official clients compare as text) and its properties sorted back into system and user ones.
@Suite struct DeliveryConversionTests {
    @Test func eightUpperCaseDigits() {
        #expect(CRC32.hex(Array("123456789".utf8)) == "CBF43926")
        #expect(CRC32.hex(Array("62".utf8)) == "0012D20A")  // leading zeros kept
        #expect(CRC32.hex([]) == "00000000")
    }

    @Test func deliveredMessageCarriesTheDigestOfItsBody() {
        let body = (0..<1024).map { UInt8($0 % 251) }
        let stored = StoredMessage(
            topic: "t", queueId: 0, body: body, properties: [MessageProperty.uniqueKey: "ID1"], flags: 0,
            bornTimestamp: 1, storeTimestamp: 2, bornHost: "127.0.0.1:1", storeHost: "127.0.0.1:2",
            reconsumeTimes: 0, preparedTransactionOffset: 0, physicalOffset: 0, queueOffset: 0, storeSize: 0)
        let message = stored.toProtocol(namespace: "", receiptHandle: nil, invisibleDuration: nil, deliveryAttempt: nil)
        #expect(message.systemProperties?.bodyDigest?.type == .crc32)
        // zlib.crc32(bytes(i % 251 for i in range(1024)))
        #expect(message.systemProperties?.bodyDigest?.checksum == "7BE4DFD0")
    }

    @Test("stored properties go back to their system fields; the rest are the user's")
    func propertiesSortedIntoSystemAndUser() {
        var stored = StoredMessage(
            topic: "%RETRY%g", queueId: 3, body: Array("x".utf8), properties: [:], flags: 0,
            bornTimestamp: 1_700_000_000_123, storeTimestamp: 1_700_000_000_456, bornHost: "10.0.0.1:5", storeHost: "10.0.0.2:6",
            reconsumeTimes: 0, preparedTransactionOffset: 0, physicalOffset: 77, queueOffset: 9, storeSize: 0)
        stored.properties = [
            MessageProperty.tags: "TagA", MessageProperty.keys: "k1 k2", MessageProperty.uniqueKey: "UID",
            "__MESSAGE_TYPE": "FIFO", "__SHARDINGKEY": "order-1", "__STARTDELIVERTIME": "1700000001000",
            "__BODY_ENCODING": "GZIP", "__TRACE_CONTEXT": "trace", "__RETRY_ORIGIN_TOPIC": "orders",
            "__DLQ_ORIGIN_TOPIC": "orders", "__DLQ_ORIGIN_MESSAGE_ID": "OLD", "region": "eu", "amount": "7",
        ]
        let m = stored.toProtocol(namespace: "ns", receiptHandle: "h", invisibleDuration: .seconds(30), deliveryAttempt: 2)
        let system = m.systemProperties
        #expect(m.topic?.name == "orders")
        #expect(m.topic?.resourceNamespace == "ns")
        #expect(m.userProperties == ["region": "eu", "amount": "7"])
        #expect(system?.tag == "TagA")
        #expect(system?.keys == ["k1", "k2"])
        #expect(system?.messageId == "UID")
        #expect(system?.messageType == .fifo)
        #expect(system?.messageGroup == "order-1")
        #expect(system?.deliveryTimestamp?.milliseconds == 1_700_000_001_000)
        #expect(system?.bodyEncoding == .gzip)
        #expect(system?.traceContext == "trace")
        #expect(system?.deadLetterQueue?.topic == "orders")
        #expect(system?.deadLetterQueue?.messageId == "OLD")
        #expect(system?.receiptHandle == "h")
        #expect(system?.deliveryAttempt == 2)
        #expect(system?.queueId == 3)
        #expect(system?.queueOffset == 9)
        #expect(system?.bornHost == "10.0.0.1:5")

        // Nothing stored: the protocol's defaults, and the offset id.
        stored.properties = [:]
        let plain = stored.toProtocol(namespace: "", receiptHandle: nil, invisibleDuration: nil, deliveryAttempt: nil)
        #expect(plain.topic?.name == "%RETRY%g")
        #expect(plain.userProperties.isEmpty)
        #expect(plain.systemProperties?.messageType == .normal)
        #expect(plain.systemProperties?.bodyEncoding == .identity)
        #expect(plain.systemProperties?.tag == nil)
        #expect(plain.systemProperties?.messageGroup == nil)
        #expect(plain.systemProperties?.deliveryTimestamp == nil)
        #expect(plain.systemProperties?.messageId == stored.msgId)
    }
}
