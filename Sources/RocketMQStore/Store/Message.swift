/// Well-known property keys, spelled as RocketMQ spells them so clients feel at home.
public enum MessageProperty {
    /// The message's tag (one), used by the ConsumeQueue tag hash and tag filters.
    public static let tags = tagsKey.description
    /// Business keys, separated by spaces; each is indexed in the IndexFile.
    public static let keys = keysKey.description
    /// The client-assigned unique id; indexed for `MessageStore.message(uniqueId:)`.
    public static let uniqueKey = uniqueKeyKey.description

    // The same names as `StaticString`s, for code that borrows their bytes without copying
    // them (their memory lives as long as the program); each name is spelled only here.
    public static let tagsKey: StaticString = "TAGS"
    public static let keysKey: StaticString = "KEYS"
    public static let uniqueKeyKey: StaticString = "UNIQ_KEY"
}

/// One property of a message being encoded from bytes (`MessageStore.encode(...)`): UTF-8
/// key and value, borrowed for the duration of the call.
public struct MessagePropertyBytes {
    public var key: UnsafeRawBufferPointer
    public var value: UnsafeRawBufferPointer

    public init(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        self.key = key
        self.value = value
    }
}

/// A message handed to `MessageStore.append(_:)`.
public struct MessageToAppend: Sendable, Equatable {
    /// Topic name (1–255 UTF-8 bytes, no `/`: it names a directory).
    public var topic: String
    /// Queue of the topic (≥ 0).
    public var queueId: Int32
    /// Payload, stored as is.
    public var body: [UInt8]
    /// String properties; see `MessageProperty` for the keys the store understands.
    public var properties: [String: String]
    /// Producer flags, stored as is.
    public var flags: Int32
    /// When the producer created the message, ms since the epoch.
    public var bornTimestamp: Int64
    /// The producer's address, `host:port`.
    public var bornHost: String
    /// How many times this message was redelivered (retry topics).
    public var reconsumeTimes: Int32
    /// For transaction messages, the physical offset of the prepared (half) message.
    public var preparedTransactionOffset: Int64

    public init(
        topic: String, queueId: Int32, body: [UInt8], properties: [String: String] = [:],
        flags: Int32 = 0, bornTimestamp: Int64 = 0, bornHost: String = "0.0.0.0:0",
        reconsumeTimes: Int32 = 0, preparedTransactionOffset: Int64 = 0
    ) {
        self.topic = topic
        self.queueId = queueId
        self.body = body
        self.properties = properties
        self.flags = flags
        self.bornTimestamp = bornTimestamp
        self.bornHost = bornHost
        self.reconsumeTimes = reconsumeTimes
        self.preparedTransactionOffset = preparedTransactionOffset
    }

    /// The `TAGS` property, if any.
    public var tags: String? { properties[MessageProperty.tags] }
    /// The `KEYS` property split on spaces.
    public var keys: [String] { MessageProperty.splitKeys(properties[MessageProperty.keys]) }
    /// The `UNIQ_KEY` property, if any.
    public var uniqueId: String? { properties[MessageProperty.uniqueKey] }
}

/// A message encoded as its CommitLog record, ready for `MessageStore.append(_:)`: made by
/// `MessageStore.encode(topic:queueId:bornTimestamp:bornHost:properties:body:)`.
public struct EncodedMessage: Sendable {
    /// The record, offsets and store time not yet filled in.
    let record: [UInt8]
    public let topic: String
    public let queueId: Int32
}

/// A message as read back from the store, with the positions the store assigned.
/// Fields mean what they mean in `MessageToAppend`; the rest the store assigned.
public struct StoredMessage: Sendable, Equatable {
    public var topic: String
    public var queueId: Int32
    public var body: [UInt8]
    public var properties: [String: String]
    public var flags: Int32
    /// When the producer created it, ms since the epoch.
    public var bornTimestamp: Int64
    /// When the store appended it, ms since the epoch; non-decreasing in CommitLog order.
    public var storeTimestamp: Int64
    /// The producer's address, `host:port`.
    public var bornHost: String
    /// The store's address (`StoreConfiguration.storeHost`), `host:port`.
    public var storeHost: String
    public var reconsumeTimes: Int32
    public var preparedTransactionOffset: Int64
    /// Byte offset of the record in the CommitLog.
    public var physicalOffset: Int64
    /// Position of the message in its topic/queue.
    public var queueOffset: Int64
    /// Size of the whole record in bytes.
    public var storeSize: Int32

    /// The offset message id: store host and physical offset, 32 upper-case hex digits.
    public var msgId: String { MessageID.make(storeHost: storeHost, physicalOffset: physicalOffset) }
    /// The `TAGS` property, if any.
    public var tags: String? { properties[MessageProperty.tags] }
    /// The `KEYS` property split on spaces.
    public var keys: [String] { MessageProperty.splitKeys(properties[MessageProperty.keys]) }
    /// The `UNIQ_KEY` property, if any.
    public var uniqueId: String? { properties[MessageProperty.uniqueKey] }
}

/// What `MessageStore.append(_:)` returns once the flush policy holds.
public struct AppendResult: Sendable, Equatable {
    /// Byte offset of the record in the CommitLog.
    public var physicalOffset: Int64
    /// Position of the message in its topic/queue.
    public var queueOffset: Int64
    /// Size of the record written.
    public var wroteBytes: Int32
    /// Store time assigned to the message, ms since the epoch.
    public var storeTimestamp: Int64
    /// The store host written into the record (part of `msgId`).
    public var storeHost: String
    /// The offset message id (see `StoredMessage.msgId`); computed on access, as most
    /// callers that need it only need it once.
    public var msgId: String { MessageID.make(storeHost: storeHost, physicalOffset: physicalOffset) }
}

/// A topic and queue id: the key of a ConsumeQueue.
public struct QueueID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var topic: String
    public var queueId: Int32
    /// The queue `queueId` of `topic`.
    public init(topic: String, queueId: Int32) {
        self.topic = topic
        self.queueId = queueId
    }
    public static func < (a: QueueID, b: QueueID) -> Bool {
        (a.topic, a.queueId) < (b.topic, b.queueId)
    }
    public var description: String { "\(topic)/\(queueId)" }
}

/// The answer to `MessageStore.messages(topic:queueId:from:maxCount:maxBytes:tagFilter:)`.
public struct QueueReadResult: Sendable {
    /// Messages found, in queue order (those filtered out by tag are skipped, not returned).
    public var messages: [StoredMessage]
    /// Where the next read should start (past everything examined, filtered or not).
    public var nextOffset: Int64
    /// The queue's min offset at the time of the read.
    public var minOffset: Int64
    /// The queue's max offset (next offset to be written) at the time of the read.
    public var maxOffset: Int64
}

extension MessageProperty {
    /// The keys of a stored KEYS property (space-separated; empty pieces dropped).
    public static func splitKeys(_ value: String?) -> [String] {
        guard let value else { return [] }
        return value.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
    }
}

/// Stable 64-bit hashes of tags (the ConsumeQueue's tag hash) and index keys: FNV-1a,
/// so the value never changes between processes or releases.
public enum TagHash {
    /// The tag hash stored in ConsumeQueue entries; 0 for no tag.
    public static func of(_ tag: String?) -> Int64 {
        guard let tag, !tag.isEmpty else { return 0 }
        return Int64(bitPattern: fnv1a(tag))
    }

    /// The tag hash of a tag given as UTF-8 bytes: `of(String(decoding: bytes, as: UTF8.self))`.
    static func of(_ tag: UnsafeRawBufferPointer) -> Int64 {
        tag.isEmpty ? 0 : Int64(bitPattern: fnv1a(tag))
    }

    static let fnvOffsetBasis: UInt64 = 0xCBF2_9CE4_8422_2325

    static func fnv1a(_ s: String) -> UInt64 {
        fnv1a(s.utf8)
    }

    /// FNV-1a over `bytes`, continuing from `h` (hash pieces as if they were one string).
    static func fnv1a(_ bytes: some Sequence<UInt8>, continuing h: UInt64 = fnvOffsetBasis) -> UInt64 {
        var h = h
        for b in bytes {
            h ^= UInt64(b)
            h &*= 0x0000_0100_0000_01B3
        }
        return h
    }
}

/// The offset message id, as RocketMQ builds it: store IPv4 (4 bytes), port (4 bytes),
/// physical offset (8 bytes), hex.
public enum MessageID {
    /// The id of the record at `physicalOffset` written by `storeHost` (`a.b.c.d:port`;
    /// other hosts give zeros for the address part).
    public static func make(storeHost: String, physicalOffset: Int64) -> String {
        var bytes = [UInt8](repeating: 0, count: 16)
        let parts = storeHost.split(separator: ":")
        if parts.count == 2, let port = UInt32(parts[1]) {
            let octets = parts[0].split(separator: ".").compactMap { UInt8($0) }
            if octets.count == 4 { for i in 0..<4 { bytes[i] = octets[i] } }
            for i in 0..<4 { bytes[4 + i] = UInt8(truncatingIfNeeded: port >> (24 - 8 * i)) }
        }
        let off = UInt64(bitPattern: physicalOffset)
        for i in 0..<8 { bytes[8 + i] = UInt8(truncatingIfNeeded: off >> (56 - 8 * i)) }
        let digits = Array("0123456789ABCDEF".utf8)
        var out = [UInt8]()
        out.reserveCapacity(32)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The physical offset inside an offset message id, if `msgId` is one.
    public static func physicalOffset(of msgId: String) -> Int64? {
        guard msgId.utf8.count == 32, let v = UInt64(msgId.suffix(16), radix: 16) else { return nil }
        return Int64(bitPattern: v)
    }
}
