import NIOSSL

/// Where an ``RPCChannel`` connects and how it behaves. Every field has a documented default.
public struct ChannelConfiguration: Sendable {
    /// Server host name or address.
    public var host: String
    /// Server port.
    public var port: Int
    /// TLS settings; `nil` (the default) means cleartext h2c with prior knowledge.
    public var tls: TLS?
    /// Give up a connection attempt after this long. Default 20 s.
    public var connectTimeout: Duration
    /// Delay between failed connection attempts (gRPC connection-backoff spec).
    public var backoff: Backoff
    /// Client keepalive PINGs.
    public var keepalive: Keepalive
    /// Largest response message accepted (after decompression). Default 4 MiB.
    public var maxReceiveMessageSize: Int
    /// Options used by calls that pass none of their own. Its metadata goes with every call,
    /// ahead of the call's own (laid out once, with the channel's fixed header fields).
    public var defaultCallOptions: CallOptions
    /// Per-stream receive window advertised to the server. Default 1 MiB.
    public var streamWindow: UInt32
    /// Connection-level receive window. Default 16 MiB.
    public var connectionWindow: Int32

    /// Client TLS.
    public struct TLS: Sendable {
        /// Roots used to verify the server; default the system's.
        public var trustRoots: NIOSSLTrustRoots
        /// Skip certificate verification entirely (tests only).
        public var insecureSkipVerify: Bool
        /// SNI and verification name; default the configured host.
        public var serverName: String?
        /// Client certificate chain for mutual TLS.
        public var certificateChain: [NIOSSLCertificateSource]
        /// Client private key for mutual TLS.
        public var privateKey: NIOSSLPrivateKeySource?

        public init(
            trustRoots: NIOSSLTrustRoots = .default,
            insecureSkipVerify: Bool = false,
            serverName: String? = nil,
            certificateChain: [NIOSSLCertificateSource] = [],
            privateKey: NIOSSLPrivateKeySource? = nil
        ) {
            self.trustRoots = trustRoots
            self.insecureSkipVerify = insecureSkipVerify
            self.serverName = serverName
            self.certificateChain = certificateChain
            self.privateKey = privateKey
        }
    }

    /// Connection back-off: the n-th retry waits `min(initial * multiplier^n, maximum)`, randomized by ±`jitter`.
    public struct Backoff: Sendable {
        /// Default 1 s.
        public var initial: Duration
        /// Default 1.6.
        public var multiplier: Double
        /// Default 0.2 (±20 %).
        public var jitter: Double
        /// Default 120 s.
        public var maximum: Duration

        public init(initial: Duration = .seconds(1), multiplier: Double = 1.6, jitter: Double = 0.2, maximum: Duration = .seconds(120)) {
            self.initial = initial
            self.multiplier = multiplier
            self.jitter = jitter
            self.maximum = maximum
        }

        /// The un-jittered delay before retry number `attempt` (0-based).
        func baseDelay(attempt: Int) -> Duration {
            var delay = initial
            for _ in 0..<min(attempt, 64) {
                delay = delay * multiplier
                if delay >= maximum { return maximum }
            }
            return min(delay, maximum)
        }

        /// The delay before retry number `attempt`, with jitter applied.
        func delay(attempt: Int) -> Duration {
            let base = baseDelay(attempt: attempt)
            return base * (1 + Double.random(in: -jitter...jitter))
        }
    }

    /// Client keepalive: PING after idle time, close if unanswered.
    public struct Keepalive: Sendable {
        /// PING after this long without reading; `nil` (the default) disables.
        public var pingInterval: Duration?
        /// Close if a PING is not acknowledged within this long. Default 20 s.
        public var pingTimeout: Duration

        public init(pingInterval: Duration? = nil, pingTimeout: Duration = .seconds(20)) {
            self.pingInterval = pingInterval
            self.pingTimeout = pingTimeout
        }
    }

    public init(
        host: String,
        port: Int,
        tls: TLS? = nil,
        connectTimeout: Duration = .seconds(20),
        backoff: Backoff = Backoff(),
        keepalive: Keepalive = Keepalive(),
        maxReceiveMessageSize: Int = 4 * 1024 * 1024,
        defaultCallOptions: CallOptions = CallOptions(),
        streamWindow: UInt32 = 1024 * 1024,
        connectionWindow: Int32 = 16 * 1024 * 1024
    ) {
        self.host = host
        self.port = port
        self.tls = tls
        self.connectTimeout = connectTimeout
        self.backoff = backoff
        self.keepalive = keepalive
        self.maxReceiveMessageSize = maxReceiveMessageSize
        self.defaultCallOptions = defaultCallOptions
        self.streamWindow = streamWindow
        self.connectionWindow = connectionWindow
    }

    var http2Settings: HTTP2LocalSettings {
        HTTP2LocalSettings(
            maxConcurrentStreams: 1000,
            initialStreamWindow: streamWindow,
            connectionWindow: connectionWindow,
            maxHeaderListSize: 64 * 1024
        )
    }
}
