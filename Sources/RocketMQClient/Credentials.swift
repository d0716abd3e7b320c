/// An access key and secret; requests are signed with HMAC-SHA1 as the RocketMQ 5 clients do.
public struct Credentials: Sendable, Hashable {
    /// The access key, sent in clear in the `authorization` header.
    public var accessKey: String
    /// The secret that signs each request's `x-mq-date-time`; never sent.
    public var accessSecret: String

    /// Credentials with `accessKey` and its `accessSecret`.
    public init(accessKey: String, accessSecret: String) {
        self.accessKey = accessKey
        self.accessSecret = accessSecret
    }
}
