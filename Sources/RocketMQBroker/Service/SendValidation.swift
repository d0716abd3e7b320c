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
            guard !key.isEmpty, !StoredProperty.isReserved(key), !hasControlCharacter(key), !hasControlCharacter(value)
            else { throw .illegalPropertyKey(key) }
        }
        var propertyBytes = 0
        for (key, value) in message.userProperties { propertyBytes += key.utf8.count + value.utf8.count }
        if propertyBytes > maxUserPropertyBytes {
            throw .propertiesTooLarge("user properties take \(propertyBytes) bytes, more than the 16 KiB limit")
        }
    }
}
