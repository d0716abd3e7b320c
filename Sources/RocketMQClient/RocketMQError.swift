import RocketRPC

/// Everything the client throws.
public enum RocketMQError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The broker or NameServer answered with a non-OK `apache.rocketmq.v2.Status`.
    case status(code: Apache_Rocketmq_V2_Code, message: String)
    /// The call failed below the protocol: connection refused, deadline, reset stream.
    case transport(RPCError)
    /// The caller passed something the client refuses before sending (bad endpoint, empty topic).
    case invalidArgument(String)
    /// The route of `topic` has no queue the operation can use.
    case noQueue(topic: String, reason: String)
    /// The client was shut down; no further calls are made.
    case shutDown
    /// The awaiting task was cancelled.
    case cancelled

    /// The code name and number with the message, for logs.
    public var description: String {
        switch self {
        case .status(let code, let message): "\(code.protoName ?? "\(code.rawValue)") (\(code.rawValue)): \(message)"
        case .transport(let error): "transport: \(error)"
        case .invalidArgument(let message): "invalid argument: \(message)"
        case .noQueue(let topic, let reason): "topic \"\(topic)\" has no usable queue: \(reason)"
        case .shutDown: "the client is shut down"
        case .cancelled: "cancelled"
        }
    }

    /// Whether trying again (on another broker, if there is one) may succeed.
    public var isRetryable: Bool {
        switch self {
        case .transport(let error): error.code != .invalidArgument && error.code != .unimplemented && error.code != .cancelled
        case .status(let code, _):
            switch code {
            case .tooManyRequests, .internalError, .internalServerError, .haNotAvailable, .proxyTimeout,
                 .masterPersistenceTimeout, .slavePersistenceTimeout, .requestTimeout, .topicNotFound,
                 // A slave, or a master fenced or superseded: its group's master (or another group) takes it.
                 .preconditionFailed:
                true
            default: false
            }
        case .noQueue: true
        default: false
        }
    }

    /// A send answered this way was stored, but not made as durable as the broker was asked to
    /// (its flush or its slave timed out, or no slave follows it): sending it again would store
    /// it twice, so the producer does not retry it.
    public var isStoredButUnconfirmed: Bool {
        guard case .status(let code, _) = self else { return false }
        return code == .haNotAvailable || code == .masterPersistenceTimeout || code == .slavePersistenceTimeout
    }

    /// The broker refused the request before storing anything (flow control, a topic or queue it
    /// does not have, a broker that takes no writes): trying again cannot store a message twice.
    var isRefusedBeforeStoring: Bool {
        switch self {
        case .status(let code, _): code == .tooManyRequests || code == .topicNotFound || code == .preconditionFailed
        case .noQueue: true
        default: false
        }
    }

    /// Wraps any error a call threw into a `RocketMQError`.
    static func wrapping(_ error: any Error) -> RocketMQError {
        switch error {
        case let error as RocketMQError: error
        case let error as RPCError: error.code == .cancelled && _isCancelled() ? .cancelled : .transport(error)
        case is CancellationError: .cancelled
        default: .transport(RPCError(code: .unknown, message: "\(error)"))
        }
    }

    private static func _isCancelled() -> Bool { withUnsafeCurrentTask { $0?.isCancelled ?? false } }

    /// Throws `.status` unless `status` is OK.
    static func check(_ status: Apache_Rocketmq_V2_Status?) throws(RocketMQError) {
        let code = status?.code ?? .unspecified
        guard code == .ok else {
            throw .status(code: code, message: status?.message ?? "the response carried no status")
        }
    }
}
