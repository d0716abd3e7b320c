import RocketMQAPI
import RocketMQStore
import RocketRPC

/// Property keys the broker keeps next to a stored message for what the protocol carries in
/// `SystemProperties`. User property keys may not collide with them (nor start with `__`).
enum StoredProperty {
    static let messageType = messageTypeKey.description
    static let messageGroup = messageGroupKey.description
    static let deliveryTime = deliveryTimeKey.description
    static let bodyEncoding = bodyEncodingKey.description
    static let traceContext = traceContextKey.description
    /// The value of `bodyEncoding` for a gzipped body (absent: identity).
    static let gzip = gzipValue.description

    // The same names as `StaticString`s, for the direct send, which writes their bytes without
    // copying them (see `MessagingServiceProvider+DirectSend.swift`); spelled only here.
    static let messageTypeKey: StaticString = "__MESSAGE_TYPE"
    static let messageGroupKey: StaticString = "__SHARDINGKEY"
    static let deliveryTimeKey: StaticString = "__STARTDELIVERTIME"
    static let bodyEncodingKey: StaticString = "__BODY_ENCODING"
    static let traceContextKey: StaticString = "__TRACE_CONTEXT"
    static let gzipValue: StaticString = "GZIP"
    static let deadLetterOriginTopic = "__DLQ_ORIGIN_TOPIC"
    static let deadLetterOriginMessageId = "__DLQ_ORIGIN_MESSAGE_ID"
    /// The topic a message in a group's retry topic is redelivered as.
    static let retryOriginTopic = "__RETRY_ORIGIN_TOPIC"
    /// A half message's real topic and queue (see `TransactionService`).
    static let realTopic = "__REAL_TOPIC"
    static let realQueueId = "__REAL_QID"
    /// A half message's first check-back delay, when its producer set one.
    static let transactionRecoveryMillis = "__TRANSACTION_RECOVERY_MS"
    /// An op record's resolution: COMMIT, ROLLBACK or DISCARD.
    static let transactionResolution = "__TRANSACTION_RESOLUTION"
    /// A delay op record's outcome: DELIVERED, RECALLED or DISCARDED.
    static let delayOutcome = "__DELAY_OUTCOME"
    /// A delay message rolled forward (see `DelayService.roll`): the schedule offset it was first
    /// stored at, which its recall handle names, that first record's CommitLog offset, and the
    /// schedule offset this copy supersedes; `delayRecalled` marks a recalled one's bodiless copy.
    static let delayOrigin = "__DELAY_ORIGIN"
    static let delayOriginAt = "__DELAY_ORIGIN_AT"
    static let delayRolledFrom = "__DELAY_ROLLED_FROM"
    static let delayRecalled = "__DELAY_RECALLED"

    static func isReserved(_ key: String) -> Bool {
        key.hasPrefix("__") || key == MessageProperty.tags || key == MessageProperty.keys || key == MessageProperty.uniqueKey
    }

    /// `isReserved` for a key of ASCII bytes.
    static func isReserved(ascii key: UnsafeRawBufferPointer) -> Bool {
        if key.count >= 2, key[0] == UInt8(ascii: "_"), key[1] == UInt8(ascii: "_") { return true }
        return key.equals(MessageProperty.tagsKey) || key.equals(MessageProperty.keysKey) || key.equals(MessageProperty.uniqueKeyKey)
    }
}

extension Apache_Rocketmq_V2_Message {
    /// What the store keeps of a protocol message. Validation happens before (see `SendValidation`).
    func toAppend(queueId: Int32, bornHost: String, type: Apache_Rocketmq_V2_MessageType) -> MessageToAppend {
        let system = systemProperties ?? Apache_Rocketmq_V2_SystemProperties()
        var properties = userProperties
        if let tag = system.tag, !tag.isEmpty { properties[MessageProperty.tags] = tag }
        if !system.keys.isEmpty { properties[MessageProperty.keys] = system.keys.joined(separator: " ") }
        if !system.messageId.isEmpty { properties[MessageProperty.uniqueKey] = system.messageId }
        properties[StoredProperty.messageType] = type.protoName ?? "NORMAL"
        if let group = system.messageGroup, !group.isEmpty { properties[StoredProperty.messageGroup] = group }
        if let delivery = system.deliveryTimestamp { properties[StoredProperty.deliveryTime] = String(delivery.milliseconds) }
        if system.bodyEncoding == .gzip { properties[StoredProperty.bodyEncoding] = StoredProperty.gzip }
        if let trace = system.traceContext, !trace.isEmpty { properties[StoredProperty.traceContext] = trace }
        return MessageToAppend(
            topic: topic?.name ?? "",
            queueId: queueId,
            body: body,
            properties: properties,
            bornTimestamp: system.bornTimestamp?.milliseconds ?? 0,
            bornHost: system.bornHost.isEmpty ? bornHost : system.bornHost
        )
    }
}

extension StoredMessage {
    /// The message group, for FIFO consumption; empty when none.
    var messageGroup: String { properties[StoredProperty.messageGroup] ?? "" }

    /// When the message becomes deliverable (ms since the epoch), for delay messages.
    var deliveryTime: Int64? { properties[StoredProperty.deliveryTime].flatMap { Int64($0) } }

    /// The id clients know the message by: the producer's unique id, else the offset id.
    var messageId: String { uniqueId ?? msgId }

    /// The protocol message as delivered to a consumer.
    func toProtocol(namespace: String, receiptHandle: String?, invisibleDuration: Duration?, deliveryAttempt: Int32?) -> Apache_Rocketmq_V2_Message {
        // One pass over the properties sorts them into the system properties and the user's
        // (a lookup per system property and a filter for the user's hashed every key ~12 times).
        var system = Apache_Rocketmq_V2_SystemProperties()
        system.bodyEncoding = .identity
        system.messageType = .normal
        var user = [String: String](minimumCapacity: properties.count)
        var uniqueId: String?
        var retryOrigin: String?
        var deadLetterTopic: String?
        var deadLetterMessageId: String?
        for (key, value) in properties {
            guard StoredProperty.isReserved(key) else {
                user[key] = value
                continue
            }
            switch key {
            case MessageProperty.tags: system.tag = value
            case MessageProperty.keys: system.keys = MessageProperty.splitKeys(value)
            case MessageProperty.uniqueKey: uniqueId = value
            case StoredProperty.bodyEncoding: if value == StoredProperty.gzip { system.bodyEncoding = .gzip }
            case StoredProperty.messageType: system.messageType = Apache_Rocketmq_V2_MessageType(protoName: value) ?? .normal
            case StoredProperty.deliveryTime: system.deliveryTimestamp = Int64(value).map { .init(milliseconds: $0) }
            case StoredProperty.messageGroup: if !value.isEmpty { system.messageGroup = value }
            case StoredProperty.traceContext: system.traceContext = value
            case StoredProperty.retryOriginTopic: retryOrigin = value
            case StoredProperty.deadLetterOriginTopic: deadLetterTopic = value
            case StoredProperty.deadLetterOriginMessageId: deadLetterMessageId = value
            default: break
            }
        }
        system.messageId = uniqueId ?? msgId
        system.bodyDigest = Apache_Rocketmq_V2_Digest(type: .crc32, checksum: CRC32.hex(body))
        system.bornTimestamp = .init(milliseconds: bornTimestamp)
        system.bornHost = bornHost
        system.storeTimestamp = .init(milliseconds: storeTimestamp)
        system.storeHost = storeHost
        system.receiptHandle = receiptHandle
        system.queueId = queueId
        system.queueOffset = queueOffset
        system.invisibleDuration = invisibleDuration.map(Google_Protobuf_Duration.init)
        system.deliveryAttempt = deliveryAttempt
        if let deadLetterTopic {
            system.deadLetterQueue = Apache_Rocketmq_V2_DeadLetterQueue(topic: deadLetterTopic, messageId: deadLetterMessageId ?? "")
        }
        return Apache_Rocketmq_V2_Message(
            topic: Apache_Rocketmq_V2_Resource(resourceNamespace: namespace, name: retryOrigin ?? topic),
            userProperties: user,
            systemProperties: system,
            body: body
        )
    }
}

extension CRC32 {
    /// The body digest as the protocol carries it: the CRC-32 in upper-case hex, eight digits,
    /// as the official clients compare it.
    static func hex(_ bytes: [UInt8]) -> String {
        let value = checksum(bytes)
        return String(unsafeUninitializedCapacity: 8) { out in
            for i in 0..<8 {
                let nibble = UInt8(truncatingIfNeeded: value >> (28 - 4 * i)) & 0xF
                out[i] = nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "A") + nibble - 10
            }
            return 8
        }
    }
}
