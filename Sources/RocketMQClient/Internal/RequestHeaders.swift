import Foundation
import RocketRPC
import Synchronization

/// The metadata every RocketMQ 5 call carries: client id, language, protocol, version, request id,
/// date-time, namespace and the (possibly unsigned) `authorization` header.
struct RequestHeaders: Sendable {
    static let clientVersion = "5.0.0-swift"
    let clientId: String
    let namespace: String
    let credentials: Credentials?
    private let signatures = SignatureCache()

    init(clientId: String, namespace: String, credentials: Credentials?) {
        self.clientId = clientId
        self.namespace = namespace
        self.credentials = credentials
    }

    /// The headers that are the same on every call of this client (its channels send them as
    /// their default metadata, laid out once).
    var fixedMetadata: Metadata {
        var metadata = Metadata()
        metadata.add("x-mq-client-id", clientId)
        metadata.add("x-mq-language", "SWIFT")
        metadata.add("x-mq-protocol", "GRPC_V2")
        metadata.add("x-mq-client-version", Self.clientVersion)
        metadata.add("x-mq-namespace", namespace)
        return metadata
    }

    /// The headers each call has of its own: a new request id, and the date-time with its
    /// signature. Those change once a second, so they are computed once a second, not per call.
    func perCallMetadata(now: Date = Date()) -> Metadata {
        let (dateTime, authorization) = signatures.signed(now, credentials: credentials)
        var metadata = Metadata()
        metadata.add("x-mq-request-id", MessageIDGenerator.next())
        metadata.add("x-mq-date-time", dateTime)
        metadata.add("authorization", authorization)
        return metadata
    }

    /// All of a call's metadata, for a call on a channel without the fixed headers as defaults.
    func metadata(now: Date = Date()) -> Metadata {
        var metadata = fixedMetadata
        metadata.add(contentsOf: perCallMetadata(now: now))
        return metadata
    }

    /// `MQv2-HMAC-SHA1 Credential=<ak>, SignedHeaders=x-mq-date-time, Signature=<hex>`, as the
    /// official clients sign; without credentials the key and secret are empty.
    static func authorization(credentials: Credentials?, dateTime: String) -> String {
        let key = credentials?.accessKey ?? ""
        let signature = HMACSHA1.hex(key: Array((credentials?.accessSecret ?? "").utf8), message: Array(dateTime.utf8))
        return "MQv2-HMAC-SHA1 Credential=\(key), SignedHeaders=x-mq-date-time, Signature=\(signature)"
    }

    /// `yyyyMMdd'T'HHmmss'Z'` in UTC.
    static func dateTime(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? calendar.timeZone
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        func two(_ value: Int?) -> String { let v = value ?? 0; return v < 10 ? "0\(v)" : "\(v)" }
        return "\(c.year ?? 1970)\(two(c.month))\(two(c.day))T\(two(c.hour))\(two(c.minute))\(two(c.second))Z"
    }
}

/// The last second's `x-mq-date-time` and `authorization` values.
private final class SignatureCache: Sendable {
    private let last = Mutex<(second: Int64, dateTime: String, authorization: String)?>(nil)

    func signed(_ date: Date, credentials: Credentials?) -> (dateTime: String, authorization: String) {
        let second = Int64(date.timeIntervalSince1970.rounded(.down))
        if let cached = last.withLock({ $0 }), cached.second == second { return (cached.dateTime, cached.authorization) }
        let dateTime = RequestHeaders.dateTime(date)
        let authorization = RequestHeaders.authorization(credentials: credentials, dateTime: dateTime)
        last.withLock { $0 = (second, dateTime, authorization) }
        return (dateTime, authorization)
    }
}
