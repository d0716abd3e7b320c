/// What every client needs to reach a cluster. Each field has a documented default.
public struct ClientConfiguration: Sendable {
    /// Where routes are asked for: NameServers or brokers, tried in order. At least one.
    public var endpoints: [Endpoint]
    /// The namespace sent in `x-mq-namespace` and in every resource. Default empty.
    public var namespace: String
    /// Signing credentials; `nil` (the default) sends an unsigned `authorization` header.
    public var credentials: Credentials?
    /// Deadline of each unary call. Default 3 s. Long polls add their polling time to it.
    public var requestTimeout: Duration
    /// Connect with TLS (verifying the server against the system roots). Default off (h2c).
    public var usesTLS: Bool
    /// How often the route cache is refreshed. Default 30 s.
    public var routeRefreshInterval: Duration
    /// How often heartbeats go to every broker in use. Default 10 s.
    public var heartbeatInterval: Duration

    /// - Parameter endpoints: `host:port`, several separated by `;`.
    public init(
        endpoints: String,
        namespace: String = "",
        credentials: Credentials? = nil,
        requestTimeout: Duration = .seconds(3),
        usesTLS: Bool = false
    ) throws(RocketMQError) {
        var parsed: [Endpoint] = []
        for part in endpoints.split(separator: ";") where !part.allSatisfy(\.isWhitespace) {
            parsed.append(try Endpoint(parsing: String(part)))
        }
        guard !parsed.isEmpty else { throw .invalidArgument("no endpoint in \"\(endpoints)\"") }
        self.endpoints = parsed
        self.namespace = namespace
        self.credentials = credentials
        self.requestTimeout = requestTimeout
        self.usesTLS = usesTLS
        self.routeRefreshInterval = .seconds(30)
        self.heartbeatInterval = .seconds(10)
    }
}
