import Foundation
import RocketMQAPI
import RocketRPC
@testable import RocketMQBroker
@testable import RocketMQStore
import Testing

/// A producer's message with the given system properties.
private func message(
    topic: String = "orders", body: String = "hello", user: [String: String] = [:],
    _ configure: (inout Apache_Rocketmq_V2_SystemProperties) -> Void = { _ in }
) -> Apache_Rocketmq_V2_Message {
    var system = Apache_Rocketmq_V2_SystemProperties()
    system.messageId = "01A2B3C4D5"
    configure(&system)
    return Apache_Rocketmq_V2_Message(
        topic: Apache_Rocketmq_V2_Resource(resourceNamespace: "ns", name: topic), userProperties: user,
        systemProperties: system, body: Array(body.utf8))
}

private func requestBytes(_ messages: [Apache_Rocketmq_V2_Message]) -> [UInt8] {
    Apache_Rocketmq_V2_SendMessageRequest(messages: messages).serializedBytes()
}

private func wire(_ bytes: [UInt8]) -> WireSendMessage? {
    bytes.withUnsafeBytes { WireSendMessage.read(request: $0) }
}

/// A length-delimited field, for hand-made encodings.
private func field(_ number: UInt8, _ payload: [UInt8]) -> [UInt8] {
    precondition(payload.count < 128)
    return [number << 3 | 2, UInt8(payload.count)] + payload
}

@Suite("SendMessage straight from the request bytes")
struct DirectSendTests {
    let peer = "10.0.0.9:5555"

    /// Every kind of property a producer sets, one case each (and some together).
    let producerMessages: [(String, Apache_Rocketmq_V2_Message, Apache_Rocketmq_V2_MessageType)] = [
        ("plain", message(), .normal),
        ("explicit NORMAL and identity encoding", message { $0.messageType = .normal; $0.bodyEncoding = .identity }, .normal),
        ("tag", message { $0.tag = "TagA" }, .normal),
        ("empty tag is left to validation", message { $0.tag = nil }, .normal),
        ("one key", message { $0.keys = ["k1"] }, .normal),
        ("several keys", message { $0.keys = ["k1", "order-2", "x"] }, .normal),
        ("a key with a space", message { $0.keys = ["order 42"] }, .normal),
        ("user properties around the system keys", message(user: ["A": "1", "KEYZ": "", "a": "x y", "zz": "last", "Tags": "t"]), .normal),
        ("gzip body", message { $0.bodyEncoding = .gzip }, .normal),
        ("trace context", message { $0.traceContext = "00-abc-def-01" }, .normal),
        ("empty trace context", message { $0.traceContext = "" }, .normal),
        ("born host and time", message {
            $0.bornHost = "producer-7"
            $0.bornTimestamp = Google_Protobuf_Timestamp(seconds: 1_700_000_000, nanos: 123_456_789)
        }, .normal),
        ("queue id", message { $0.queueId = 3 }, .normal),
        ("body digest", message { $0.bodyDigest = Apache_Rocketmq_V2_Digest(type: .crc32, checksum: "1A2B3C4D") }, .normal),
        ("FIFO", message { $0.messageType = .fifo; $0.messageGroup = "group-1" }, .fifo),
        ("FIFO inferred from the group", message { $0.messageGroup = "g" }, .fifo),
        ("everything", message(user: ["order": "42", "region": "eu"]) {
            $0.tag = "T"
            $0.keys = ["a", "b"]
            $0.messageType = .fifo
            $0.messageGroup = "g1"
            $0.bodyEncoding = .gzip
            $0.bornHost = "h:1"
            $0.bornTimestamp = Google_Protobuf_Timestamp(milliseconds: 1_234)
            $0.traceContext = "trace"
            $0.bodyDigest = Apache_Rocketmq_V2_Digest(type: .md5, checksum: "x")
        }, .fifo),
    ]

    /// Prepares each producer message on the direct path of a fresh broker and hands it to `body`.
    func eachDirectSend(
        _ body: (Broker, MessagingServiceProvider, String, Apache_Rocketmq_V2_Message, Apache_Rocketmq_V2_MessageType, [UInt8],
                 MessagingServiceProvider.DirectSend) async throws -> Void
    ) async throws {
        try await withBroker { broker in
            try broker.upsertTopic(TopicConfig(name: "orders", messageTypes: ["NORMAL", "FIFO", "DELAY"]))
            let provider = MessagingServiceProvider(broker: broker)
            for (name, m, type) in producerMessages {
                let bytes = requestBytes([m])
                let parsed = try #require(wire(bytes), "\(name)")
                let direct = try #require(provider.prepare(parsed, in: bytes, peer: peer, metadata: Metadata()), "\(name)")
                try await body(broker, provider, name, m, type, bytes, direct)
            }
        }
    }

    @Test("a record encoded from the request bytes is byte for byte the one the generated path stores")
    func sameRecordAsGeneratedPath() async throws {
        try await eachDirectSend { broker, _, name, m, type, _, direct in
            let expected = try broker.store.encode(m.toAppend(queueId: direct.encoded.queueId, bornHost: peer, type: type))
            #expect(direct.encoded.record == expected.record, "\(name)")
            #expect(direct.encoded.topic == expected.topic && direct.encoded.queueId == expected.queueId, "\(name)")
        }
    }

    @Test("a message sent directly reads back, and is found by key and id, as one sent the generated way")
    func readsBackLikeGeneratedPath() async throws {
        try await eachDirectSend { broker, provider, name, m, type, bytes, direct in
            let response = try Apache_Rocketmq_V2_SendMessageResponse(serializedBytes: await withCheckedContinuation { done in
                provider.send(direct, in: bytes) { done.resume(returning: $0) }
            }.bytes)
            #expect(response.status == .ok, "\(name)")
            let entry = try #require(response.entries.first)
            let read = try broker.store.messages(topic: m.topic?.name ?? "", queueId: direct.encoded.queueId, from: entry.offset, maxCount: 1)
            let stored = try #require(read.messages.first, "\(name)")
            let expectedId = m.systemProperties?.messageId ?? ""
            #expect(entry.messageId == (expectedId.isEmpty ? stored.msgId : expectedId), "\(name)")
            let append = m.toAppend(queueId: direct.encoded.queueId, bornHost: peer, type: type)
            #expect(stored.properties == append.properties, "\(name)")
            #expect(stored.body == append.body && stored.bornHost == append.bornHost && stored.bornTimestamp == append.bornTimestamp, "\(name)")
            // A key holding spaces is indexed by its words, as RocketMQ's KEYS are.
            for key in (m.systemProperties?.keys ?? []).flatMap({ $0.split(separator: " ").map(String.init) }) {
                #expect(broker.store.messages(key: key, topic: stored.topic).contains { $0.physicalOffset == stored.physicalOffset }, "\(name)")
            }
            if !expectedId.isEmpty {
                #expect(broker.store.message(uniqueId: expectedId) != nil, "\(name)")
            }
        }
    }

    @Test("a born or delivery time beyond Int64 milliseconds is clamped on the generated path, not a crash")
    func hugeTimestampsAreClamped() {
        let m = message {
            $0.bornTimestamp = Google_Protobuf_Timestamp(seconds: 1 << 62, nanos: 0)
            $0.deliveryTimestamp = Google_Protobuf_Timestamp(seconds: -(1 << 62), nanos: -1)
        }
        // The direct path leaves these to the generated one.
        #expect(wire(requestBytes([m])) == nil)
        let append = m.toAppend(queueId: 0, bornHost: peer, type: .delay)
        #expect(append.bornTimestamp == .max)
        #expect(append.properties["__STARTDELIVERTIME"] == String(Int64.min))
        #expect(Google_Protobuf_Timestamp(seconds: .max, nanos: 999_999_999).milliseconds == .max)
        #expect(Google_Protobuf_Timestamp(seconds: Int64.max / 1000, nanos: 999_999_999).milliseconds == .max)
        #expect(Google_Protobuf_Timestamp(seconds: 1_700_000_000, nanos: 123_456_789).milliseconds == 1_700_000_000_123)
    }

    @Test("the stored-message answer is the generated encoding of the same response")
    func responseBytesMatchGeneratedEncoding() throws {
        for id in ["", "ID", String(repeating: "x", count: 300)] {
            for offset: Int64 in [0, 1, 127, 128, 300_000, 1 << 40, .max] {
                let expected = Apache_Rocketmq_V2_SendMessageResponse(
                    status: .ok, entries: [.init(status: .ok, messageId: id, offset: offset)]).serializedBytes()
                var id = id
                let bytes = id.withUTF8 { SendMessageResponseBytes.stored(messageId: UnsafeRawBufferPointer($0), offset: offset).bytes }
                #expect(bytes == expected, "id \(id.count) bytes, offset \(offset)")
            }
        }
    }

    @Test("requests the reader cannot take exactly as protobuf-c would are left to the generated path")
    func unusualEncodingsFallBack() throws {
        #expect(wire(requestBytes([message(), message()])) == nil)
        #expect(wire(requestBytes([])) == nil)
        #expect(wire(requestBytes([message(topic: "tópico")])) == nil)
        // A NUL in a string (hand-made: the generated encoder writes C strings).
        #expect(wire(field(1, field(1, field(2, [0x61, 0, 0x62])) + field(4, [1]))) == nil)
        #expect(wire(field(1, field(1, field(2, [0x61, 0x62])) + field(4, [1]))) != nil)
        #expect(wire(requestBytes([message(user: ["k": "välue"])])) == nil)
        #expect(wire(requestBytes([message { $0.tag = "标签" }])) == nil)
        #expect(wire(requestBytes([message { $0.receiptHandle = "r" }])) == nil)
        #expect(wire(requestBytes([message { $0.deliveryAttempt = 2 }])) == nil)
        #expect(wire(requestBytes([message { $0.priority = 1 }])) == nil)
        // A topic given twice: protobuf merges the two Resources.
        let m = message().serializedBytes() + field(1, field(2, Array("other".utf8)))
        #expect(wire(field(1, m)) == nil)
        // Truncated bytes.
        let whole = requestBytes([message()])
        #expect(wire(Array(whole.dropLast())) == nil)
        // Unknown fields are read past, as protobuf-c keeps them aside.
        let unknown = message().serializedBytes() + [0xF8, 0x01, 0x05]  // field 31, varint 5
        #expect(wire(field(1, unknown)) != nil)
    }

    @Test("messages that fail a check are left to the generated path, which answers as always")
    func invalidMessagesFallBack() async throws {
        try await withBroker { broker in
            try broker.upsertTopic(TopicConfig(name: "normal-only", queueCount: 2, messageTypes: ["NORMAL"]))
            let provider = MessagingServiceProvider(broker: broker)
            let invalid: [(String, Apache_Rocketmq_V2_Message)] = [
                ("empty body", message(body: "")),
                ("blank tag", message { $0.tag = " " }),
                ("empty tag", message { $0.tag = "" }),
                ("tag with |", message { $0.tag = "a|b" }),
                ("blank key", message { $0.keys = ["\t"] }),
                ("control character in a message key", message { $0.keys = ["a\u{1}b"] }),
                ("control character in the tag", message { $0.tag = "a\u{1}b" }),
                ("control character in a property value", message(user: ["k": "a\nb"])),
                ("control character in the message group", message { $0.messageType = .fifo; $0.messageGroup = "g\u{7f}" }),
                ("no message id", message { $0.messageId = "" }),
                ("blank message id", message { $0.messageId = "  " }),
                ("reserved property", message(user: ["__SHARDINGKEY": "x"])),
                ("TAGS property", message(user: ["TAGS": "x"])),
                ("KEYS property", message(user: ["KEYS": "x"])),
                ("UNIQ_KEY property", message(user: ["UNIQ_KEY": "x"])),
                ("empty property key", message(user: ["": "x"])),
                ("control character in a key", message(user: ["a\u{7}": "x"])),
                ("FIFO without group", message { $0.messageType = .fifo }),
                ("group on a NORMAL message", message { $0.messageType = .normal; $0.messageGroup = "g" }),
                ("DELAY without time", message { $0.messageType = .delay }),
                // Delay messages are answered the generated way, with their recall handle.
                ("DELAY", message { $0.messageType = .delay; $0.deliveryTimestamp = Google_Protobuf_Timestamp(seconds: 1_800_000_000, nanos: 5_000_000) }),
                ("DELAY inferred", message { $0.deliveryTimestamp = Google_Protobuf_Timestamp(seconds: 1_800_000_000, nanos: 0) }),
                ("type the topic refuses", message(topic: "normal-only") { $0.messageGroup = "g" }),
                ("transaction", message { $0.messageType = .transaction }),
                ("illegal topic name", message(topic: "a b")),
            ]
            for (name, m) in invalid {
                let bytes = requestBytes([m])
                guard let parsed = wire(bytes) else { continue }
                #expect(provider.prepare(parsed, in: bytes, peer: peer, metadata: Metadata()) == nil, "\(name)")
            }
            // Many properties: left to the generated path's dictionary.
            let many = requestBytes([message(user: Dictionary(uniqueKeysWithValues: (0..<65).map { ("k\($0)", "v") }))])
            #expect(provider.prepare(try #require(wire(many)), in: many, peer: peer, metadata: Metadata()) == nil)
            let some = requestBytes([message(user: Dictionary(uniqueKeysWithValues: (0..<64).map { ("k\($0)", "v") }))])
            #expect(provider.prepare(try #require(wire(some)), in: some, peer: peer, metadata: Metadata()) != nil)
            // Duplicate map keys: the generated map keeps the last one.
            let entry = field(1, Array("k".utf8)) + field(2, Array("v".utf8))
            let duplicated = field(1, message().serializedBytes() + field(2, entry) + field(2, entry))
            let parsed = try #require(wire(duplicated))
            #expect(provider.prepare(parsed, in: duplicated, peer: peer, metadata: Metadata()) == nil)
        }
    }
}

extension MessagingServiceProvider.DirectSend: Equatable {
    public static func == (a: Self, b: Self) -> Bool { a.encoded.record == b.encoded.record && a.messageId == b.messageId }
}
