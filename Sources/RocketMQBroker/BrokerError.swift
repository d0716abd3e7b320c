import RocketMQAPI
import RocketMQStore

/// Why a broker request failed, with the context a user needs. `status` maps each case to the
/// `apache.rocketmq.v2.Code` the protocol defines; this is the one place that mapping lives.
public enum BrokerError: Error, Sendable, Equatable, CustomStringConvertible {
    case clientIdRequired
    case unrecognizedClientType(String)
    case badRequest(String)
    case topicNotFound(String)
    case groupNotFound(String)
    case illegalTopic(String)
    case illegalGroup(String)
    case forbidden(String)
    case queueNotWritable(String)
    case messageTypeMismatch(topic: String, type: String, accepted: [String])
    case bodyTooLarge(size: Int, limit: Int)
    case bodyEmpty
    case illegalTag(String)
    case illegalMessageID(String)
    case illegalMessageKey(String)
    case illegalPropertyKey(String)
    /// User properties over RocketMQ's limits (128 of them, 16 KiB together).
    case propertiesTooLarge(String)
    /// A request that carries no message, or one that cannot be a message.
    case messageCorrupted(String)
    case illegalMessageGroup(String)
    case illegalInvisibleTime(String)
    case illegalPollingTime(String)
    case illegalFilter(String)
    case illegalOffset(String)
    case invalidReceiptHandle(String)
    case invalidTransaction(String)
    case notFound(String)
    case illegalDeliveryTime(String)
    case notImplemented(String)
    case flushTimeout
    case busy(String)
    case storage(String)
    case badConfigFile(path: String, reason: String)
    /// This broker is a slave: it takes no writes (sends, receives, acks, config changes).
    case notMaster(String)
    /// A sync master has no slave following: the message is stored on the master only.
    case noReplica
    /// A sync master's slave did not acknowledge in time: the message is stored on the master.
    case replicationTimeout

    public var description: String {
        switch self {
        case .clientIdRequired: return "the x-mq-client-id header is required"
        case .unrecognizedClientType(let why): return why
        case .badRequest(let what): return what
        case .topicNotFound(let topic): return "topic \"\(topic)\" does not exist"
        case .groupNotFound(let group): return "consumer group \"\(group)\" does not exist"
        case .illegalTopic(let why): return why
        case .illegalGroup(let why): return why
        case .forbidden(let why): return why
        case .queueNotWritable(let why): return why
        case .messageTypeMismatch(let topic, let type, let accepted):
            return "topic \"\(topic)\" accepts \(accepted.joined(separator: ", ")) messages, not \(type)"
        case .bodyTooLarge(let size, let limit): return "message body of \(size) bytes exceeds the \(limit)-byte limit"
        case .bodyEmpty: return "message body is empty"
        case .illegalTag(let tag): return "illegal tag \(tag.debugDescription): tags are non-blank and contain no '|' and no control character"
        case .illegalMessageID(let why): return why
        case .illegalMessageKey(let key): return "illegal message key \(key.debugDescription): keys are non-blank and contain no control character"
        case .illegalPropertyKey(let key):
            return "illegal property key \(key.debugDescription): keys are non-empty, have no control character (nor do values), and are not a name RocketMQ or this broker keeps for itself (TAGS, KEYS, UNIQ_KEY, DELAY, __…)"
        case .propertiesTooLarge(let why): return why
        case .messageCorrupted(let why): return why
        case .illegalMessageGroup(let why): return why
        case .illegalInvisibleTime(let why): return why
        case .illegalPollingTime(let why): return why
        case .illegalFilter(let why): return why
        case .illegalOffset(let why): return why
        case .invalidReceiptHandle(let why): return why
        case .invalidTransaction(let why): return why
        case .notFound(let why): return why
        case .illegalDeliveryTime(let why): return why
        case .notImplemented(let what): return "\(what) is not implemented by this broker yet"
        case .flushTimeout: return "the message was written but not flushed to disk in time; it may or may not survive a crash"
        case .busy(let why): return why
        case .storage(let why): return why
        case .badConfigFile(let path, let reason): return "cannot read \(path): \(reason)"
        case .notMaster(let why): return why
        case .noReplica:
            return "no slave follows this sync master: the message is stored on the master but not replicated"
        case .replicationTimeout:
            return "no slave acknowledged the message in time: it is stored on the master, its replication is not confirmed"
        }
    }

    /// The protocol status for this error.
    public var status: Apache_Rocketmq_V2_Status {
        let code: Apache_Rocketmq_V2_Code
        switch self {
        case .clientIdRequired: code = .clientIdRequired
        case .unrecognizedClientType: code = .unrecognizedClientType
        case .badRequest: code = .badRequest
        case .topicNotFound: code = .topicNotFound
        case .groupNotFound: code = .consumerGroupNotFound
        case .illegalTopic: code = .illegalTopic
        case .illegalGroup: code = .illegalConsumerGroup
        case .forbidden: code = .forbidden
        // Retryable for clients (as for a broker that takes no writes): the next queue, a fresh route.
        case .queueNotWritable: code = .preconditionFailed
        case .messageTypeMismatch: code = .messagePropertyConflictWithType
        case .bodyTooLarge: code = .messageBodyTooLarge
        case .bodyEmpty: code = .messageBodyEmpty
        case .illegalTag: code = .illegalMessageTag
        case .illegalMessageID: code = .illegalMessageId
        case .illegalMessageKey: code = .illegalMessageKey
        case .illegalPropertyKey: code = .illegalMessagePropertyKey
        case .propertiesTooLarge: code = .messagePropertiesTooLarge
        case .messageCorrupted: code = .messageCorrupted
        case .illegalMessageGroup: code = .illegalMessageGroup
        case .illegalInvisibleTime: code = .illegalInvisibleTime
        case .illegalPollingTime: code = .illegalPollingTime
        case .illegalFilter: code = .illegalFilterExpression
        case .illegalOffset: code = .illegalOffset
        case .invalidReceiptHandle: code = .invalidReceiptHandle
        case .invalidTransaction: code = .invalidTransactionId
        case .notFound: code = .notFound
        case .illegalDeliveryTime: code = .illegalDeliveryTime
        case .notImplemented: code = .notImplemented
        case .flushTimeout: code = .masterPersistenceTimeout
        case .busy: code = .tooManyRequests
        case .storage: code = .internalServerError
        case .badConfigFile: code = .internalServerError
        case .notMaster: code = .preconditionFailed
        case .noReplica: code = .haNotAvailable
        case .replicationTimeout: code = .slavePersistenceTimeout
        }
        return Apache_Rocketmq_V2_Status(code: code, message: description)
    }

    /// Store failures as broker errors: a full disk is refused as FORBIDDEN-like internal error,
    /// a flush timeout is never reported as success.
    init(_ error: StoreError) {
        switch error {
        case .flushTimeout: self = .flushTimeout
        case .flushBacklog: self = .busy(error.description)
        case .messageTooLarge(let size, let limit): self = .bodyTooLarge(size: size, limit: limit)
        case .invalidMessage(let why): self = .badRequest(why)
        case .replica: self = .notMaster("this broker takes no writes now (a slave, or a master fenced or waiting for its NameServers); use its group's master (broker id 0)")
        default: self = .storage(error.description)
        }
    }
}

extension Apache_Rocketmq_V2_Status {
    /// `OK` (20000): every response carries an explicit code; clients call a missing one illegal.
    public static let ok = Apache_Rocketmq_V2_Status(code: .ok, message: "OK")
}
