import RocketMQAdmin
import RocketRPC

/// How mqadmin ends, grpcurl-compatible: 0 success, 1 for failures before or around a call
/// (connection, reflection, bad input), 2 for usage errors, 64 + code for a call's non-OK status.
/// The one place errors become exit codes and stderr text.
enum ExitStatus {
    static let failure: Int32 = 1
    static let usage: Int32 = 2
    /// grpcurl offsets status codes so they cannot be confused with 1 and 2.
    static let statusCodeOffset: Int32 = 64

    /// grpcurl's (Go's) spelling of a status code: `NotFound`, `DeadlineExceeded`, ...
    static func goName(_ code: StatusCode) -> String {
        switch code {
        case .ok: "OK"
        case .cancelled: "Canceled"
        case .unknown: "Unknown"
        case .invalidArgument: "InvalidArgument"
        case .deadlineExceeded: "DeadlineExceeded"
        case .notFound: "NotFound"
        case .alreadyExists: "AlreadyExists"
        case .permissionDenied: "PermissionDenied"
        case .resourceExhausted: "ResourceExhausted"
        case .failedPrecondition: "FailedPrecondition"
        case .aborted: "Aborted"
        case .outOfRange: "OutOfRange"
        case .unimplemented: "Unimplemented"
        case .internalError: "Internal"
        case .unavailable: "Unavailable"
        case .dataLoss: "DataLoss"
        case .unauthenticated: "Unauthenticated"
        }
    }

    /// The block grpcurl prints for a call that ended with a non-OK status.
    static func statusReport(_ status: RPCError) -> String {
        "ERROR:\n  Code: \(goName(status.code))\n  Message: \(status.message)\n"
    }

    /// The exit code for a call's non-OK status.
    static func code(for status: RPCError) -> Int32 {
        statusCodeOffset + Int32(status.code.rawValue)
    }

    /// An error as grpcurl words the cause after `Failed to …: `.
    static func describe(_ error: any Error) -> String {
        switch error {
        case let status as RPCError:
            "rpc error: code = \(goName(status.code)) desc = \(status.message)"
        case let admin as AdminError:
            admin.description
        default:
            "\(error)"
        }
    }

    /// Whether a call failed because no connection could be made (as opposed to a server's status).
    ///
    /// RocketRPC reports both as `RPCError`; the wording of its connector's errors is what tells them
    /// apart (UNAVAILABLE "cannot connect to …", DEADLINE_EXCEEDED "… while waiting for a connection").
    static func isConnectionFailure(_ error: any Error) -> Bool {
        guard let status = error as? RPCError else { return false }
        switch status.code {
        case .unavailable:
            return ["cannot connect to", "gave up waiting for a connection", "invalid TLS configuration"].contains { status.message.hasPrefix($0) }
        case .deadlineExceeded:
            return status.message.hasSuffix("while waiting for a connection")
        default:
            return false
        }
    }
}
