import RocketMQAPI
import RocketRPC

// The one place where registry errors become gRPC statuses and RocketMQ response codes.
extension NameServerError {
    /// The gRPC status a call fails with.
    public var rpcError: RPCError {
        switch self {
        case .invalidRegistration, .notRegistered, .emptyRequest:
            return RPCError(code: .invalidArgument, message: description)
        case .topicNotFound, .brokerNotFound:
            return RPCError(code: .notFound, message: description)
        case .supersededMaster:
            return RPCError(code: .failedPrecondition, message: description)
        }
    }

    /// The `apache.rocketmq.v2.Status` a MessagingService response carries.
    public var status: Apache_Rocketmq_V2_Status {
        switch self {
        case .invalidRegistration, .notRegistered, .emptyRequest:
            return Apache_Rocketmq_V2_Status(code: .badRequest, message: description)
        case .topicNotFound:
            return Apache_Rocketmq_V2_Status(code: .topicNotFound, message: description)
        case .brokerNotFound:
            return Apache_Rocketmq_V2_Status(code: .notFound, message: description)
        case .supersededMaster:
            return Apache_Rocketmq_V2_Status(code: .forbidden, message: description)
        }
    }
}
