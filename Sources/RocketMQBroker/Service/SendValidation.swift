import RocketMQAPI
import RocketMQStore

/// What a message must satisfy before it is stored: type accepted by the topic, FIFO messages
/// with a group (and only they), a non-empty body within the limit, sane tag and property keys.
enum SendValidation {
    /// The longest delay a delay message may ask for (RocketMQ's timer default, 3 days).
    static let maxDelayMilliseconds: Int64 = 3 * 86_400_000

    static func check(
        _ message: Apache_Rocketmq_V2_Message, type: Apache_Rocketmq_V2_MessageType, topic: TopicConfig, maxBodySize: Int
    ) throws(BrokerError) {
        let system = message.systemProperties ?? Apache_Rocketmq_V2_SystemProperties()
        let typeName = type.protoName ?? "UNKNOWN"
        guard topic.acceptedMessageTypes.contains(type) else {
            throw .messageTypeMismatch(topic: topic.name, type: typeName, accepted: topic.messageTypes)
        }
        let group = system.messageGroup ?? ""
        if type == .fifo, group.isEmpty {
            throw .illegalMessageGroup("FIFO messages need a message group")
        }
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
            guard !tag.isBlank, !tag.contains("|") else { throw .illegalTag(tag) }
        }
        for key in system.keys where key.isBlank || key.contains(" ") {
            throw .badRequest("illegal message key \(key.debugDescription): keys are non-blank and contain no spaces")
        }
        for key in message.userProperties.keys {
            guard !key.isEmpty, !StoredProperty.isReserved(key),
                  key.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F })
            else { throw .illegalPropertyKey(key) }
        }
        var propertyBytes = 0
        for (key, value) in message.userProperties { propertyBytes += key.utf8.count + value.utf8.count }
        if propertyBytes > 16 * 1024 {
            throw .badRequest("user properties take \(propertyBytes) bytes, more than the 16 KiB limit")
        }
    }
}
