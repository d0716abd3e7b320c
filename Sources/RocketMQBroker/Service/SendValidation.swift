import RocketMQAPI
import RocketMQStore

/// What a message must satisfy before it is stored: type accepted by the topic, FIFO messages
/// with a group (and only they), a non-empty body within the limit, a message id, sane tag,
/// keys and properties. The rules and codes are RocketMQ 5's (its proxy's `GrpcValidator`
/// and message property checks), so clients map each refusal to the same exception.
enum SendValidation {
    /// The longest delay a delay message may ask for (RocketMQ's timer default, 3 days).
    static let maxDelayMilliseconds: Int64 = 3 * 86_400_000
    /// RocketMQ's limits on user properties: their number, and their keys' and values' bytes together.
    static let maxUserProperties = 128
    static let maxUserPropertyBytes = 16 * 1024

    /// The property names RocketMQ keeps for itself (its `MessageConst.STRING_HASH_SET`): a user
    /// property of one of these names is refused, as RocketMQ 5's proxy refuses it, so that an
    /// application sending them here fails the same way as against RocketMQ. Our own stored
    /// names all start with `__` (see `StoredProperty`), refused apart. Not used to classify
    /// stored properties: a message stored before this check still delivers them as the user's.
    static let systemPropertyNames: Set<String> = [
        "TRACE_ON", "MSG_REGION", "KEYS", "TAGS", "WAIT", "DELAY", "RETRY_TOPIC", "REAL_TOPIC", "REAL_QID",
        "TRAN_MSG", "PGROUP", "MIN_OFFSET", "MAX_OFFSET", "BUYER_ID", "ORIGIN_MESSAGE_ID", "TRANSFER_FLAG",
        "CORRECTION_FLAG", "MQ2_FLAG", "RECONSUME_TIME", "UNIQ_KEY", "MAX_RECONSUME_TIMES", "CONSUME_START_TIME",
        "POP_CK", "POP_CK_OFFSET", "1ST_POP_TIME", "TRAN_PREPARED_QUEUE_OFFSET", "DUP_INFO", "EXTEND_UNIQ_INFO",
        "INSTANCE_ID", "CORRELATION_ID", "REPLY_TO_CLIENT", "TTL", "ARRIVE_TIME", "PUSH_REPLY_TIME", "CLUSTER",
        "MSG_TYPE", "INNER_MULTI_QUEUE_OFFSET", "TIMER_DELAY_SEC", "TIMER_DELIVER_MS", "TIMER_ENQUEUE_MS",
        "TIMER_DEQUEUE_MS", "TIMER_ROLL_TIMES", "TIMER_OUT_MS", "TIMER_DEL_UNIQKEY", "TIMER_DELAY_LEVEL",
        "__BORNHOST", "BORN_TIMESTAMP",
    ]

    /// Whether a user property may not be called `key`: a name of ours or of RocketMQ's.
    static func isReservedPropertyKey(_ key: String) -> Bool {
        StoredProperty.isReserved(key) || systemPropertyNames.contains(key)
    }

    /// `isReservedPropertyKey` for a key of ASCII bytes: RocketMQ's names all start with an
    /// upper-case letter or a digit, so most keys are told apart by their first byte.
    static func isReservedPropertyKey(ascii key: UnsafeRawBufferPointer) -> Bool {
        if StoredProperty.isReserved(ascii: key) { return true }
        guard let first = key.first, (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(first) || first == UInt8(ascii: "1") else { return false }
        return systemPropertyNames.contains(String(decoding: key, as: UTF8.self))
    }

    /// Whether `text` has an ISO control character (U+0000–U+001F, U+007F–U+009F), which
    /// RocketMQ refuses in tags, keys, message groups and properties.
    static func hasControlCharacter(_ text: String) -> Bool {
        text.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }
    }

    static func check(
        _ message: Apache_Rocketmq_V2_Message, type: Apache_Rocketmq_V2_MessageType, topic: TopicConfig, maxBodySize: Int
    ) throws(BrokerError) {
        let system = message.systemProperties ?? Apache_Rocketmq_V2_SystemProperties()
        let typeName = type.protoName ?? "UNKNOWN"
        guard topic.acceptedMessageTypes.contains(type) else {
            throw .messageTypeMismatch(topic: topic.name, type: typeName, accepted: topic.messageTypes)
        }
        guard !system.messageId.isBlank else { throw .illegalMessageID("the message id is empty") }
        let group = system.messageGroup ?? ""
        if type == .fifo, group.isBlank {
            throw .illegalMessageGroup("FIFO messages need a message group")
        }
        if hasControlCharacter(group) { throw .illegalMessageGroup("the message group \(group.debugDescription) has a control character") }
        if type != .fifo, !group.isEmpty {
            throw .illegalMessageGroup("only FIFO messages carry a message group, this one is \(typeName)")
        }
        if group.utf8.count > 64 { throw .illegalMessageGroup("message group is longer than 64 bytes") }
        if type == .delay, system.deliveryTimestamp == nil {
            throw .badRequest("DELAY messages need a delivery timestamp")
        }
        if let delivery = system.deliveryTimestamp {
            // A timestamp given in the wrong unit (milliseconds as seconds) lands millennia
            // ahead: refused, as RocketMQ refuses delays beyond its timer's maximum.
            let ahead = delivery.milliseconds - MessageStore.nowMilliseconds()
            if ahead > maxDelayMilliseconds {
                throw .illegalDeliveryTime("the delivery timestamp is \(ahead / 1000) s ahead, more than the \(maxDelayMilliseconds / 86_400_000) days a delay may last")
            }
        }
        guard !message.body.isEmpty else { throw .bodyEmpty }
        guard message.body.count <= maxBodySize else { throw .bodyTooLarge(size: message.body.count, limit: maxBodySize) }
        if let tag = system.tag {
            guard !tag.isBlank, !tag.contains("|"), !hasControlCharacter(tag) else { throw .illegalTag(tag) }
        }
        // A key may hold spaces, as RocketMQ allows; the index then knows it by its words.
        for key in system.keys where key.isBlank || hasControlCharacter(key) {
            throw .illegalMessageKey(key)
        }
        if message.userProperties.count > maxUserProperties {
            throw .propertiesTooLarge("\(message.userProperties.count) user properties, more than the \(maxUserProperties) allowed")
        }
        for (key, value) in message.userProperties {
            guard !key.isEmpty, !isReservedPropertyKey(key), !hasControlCharacter(key), !hasControlCharacter(value)
            else { throw .illegalPropertyKey(key) }
        }
        var propertyBytes = 0
        for (key, value) in message.userProperties { propertyBytes += key.utf8.count + value.utf8.count }
        if propertyBytes > maxUserPropertyBytes {
            throw .propertiesTooLarge("user properties take \(propertyBytes) bytes, more than the 16 KiB limit")
        }
    }
}
