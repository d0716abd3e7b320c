import RocketRPC

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
    /// TLS settings for every connection (trust roots, server name, client certificate);
    /// `nil` (the default) means cleartext h2c.
    public var tls: ChannelConfiguration.TLS?
    /// TLS on or off: turning it on verifies servers against the system's roots.
    public var usesTLS: Bool {
        get { tls != nil }
        set { tls = newValue ? (tls ?? ChannelConfiguration.TLS()) : nil }
    }
    /// How often the route cache is refreshed. Default 30 s.
    public var routeRefreshInterval: Duration
    /// How often heartbeats go to every broker in use. Default 10 s.
    public var heartbeatInterval: Duration
    /// An HTTP/2 PING goes out on a connection that read nothing for this long, and the
    /// connection is closed if the PING is not answered within `keepaliveTimeout`; calls on it
    /// then fail at once (and sends move to another broker) instead of each waiting out its
    /// deadline until the kernel gives the connection up (~15 minutes after a host vanished).
    /// Default 5 minutes, the least gRPC servers accept by default (RocketMQ's clients ping
    /// alike); `nil` disables.
    public var keepaliveInterval: Duration?
    /// See `keepaliveInterval`. Default 20 s.
    public var keepaliveTimeout: Duration

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
        self.tls = usesTLS ? ChannelConfiguration.TLS() : nil
        self.routeRefreshInterval = .seconds(30)
        self.heartbeatInterval = .seconds(10)
        self.keepaliveInterval = .seconds(300)
        self.keepaliveTimeout = .seconds(20)
    }
}
