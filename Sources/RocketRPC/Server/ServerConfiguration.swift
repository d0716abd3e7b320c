import NIOSSL

/// How an ``RPCServer`` listens and the limits it enforces. Every field has a documented default.
public struct ServerConfiguration: Sendable {
    /// Address to bind. Default `127.0.0.1`.
    public var host: String
    /// Port to bind; `0` picks an ephemeral port (read it back from ``RPCServer/localPort``). Default `0`.
    public var port: Int
    /// When set, TLS (ALPN `h2`) is offered; cleartext h2c with prior knowledge is still accepted on the
    /// same port (the first byte, `0x16` for a TLS ClientHello, decides). Default `nil`: cleartext only.
    public var tls: TLSConfiguration?
    /// Largest request message accepted (after decompression); larger ones end the call with
    /// `RESOURCE_EXHAUSTED`. Default 4 MiB.
    public var maxReceiveMessageSize: Int
    /// SETTINGS_MAX_CONCURRENT_STREAMS advertised to clients. Default 1000.
    public var maxConcurrentStreams: UInt32
    /// Bytes of request messages still arriving (begun, not yet complete) that one connection may
    /// hold across all its calls. Flow control does not bound these: a message's bytes are
    /// returned to the window as they arrive, so that a message larger than the window can
    /// arrive at all. Without a bound, one connection opening `maxConcurrentStreams` calls each
    /// partway through a `maxReceiveMessageSize` message would hold gigabytes. The call whose
    /// bytes would pass it ends with `RESOURCE_EXHAUSTED`; the connection and its other calls go
    /// on. Never less than `maxReceiveMessageSize` (one message of the largest size always fits).
    /// Default 64 MiB.
    public var maxAssemblingBytesPerConnection: Int
    /// When the runtime ends a call (its deadline passed, its request stream was malformed or too
    /// large) while answers the handler wrote are still queued, the status has to wait behind
    /// them, and they leave only as fast as the client opens its flow-control window. A client
    /// that takes nothing would keep them here for as long as its connection lasts. After this
    /// long the stream is reset (RST_STREAM CANCEL) and they are dropped. Default 5 s.
    public var abortedCallLinger: Duration
    /// SETTINGS_MAX_HEADER_LIST_SIZE advertised and enforced per request. Default 16 KiB.
    public var maxHeaderListSize: UInt32
    /// Per-stream receive window (SETTINGS_INITIAL_WINDOW_SIZE). Default 1 MiB.
    public var streamWindow: UInt32
    /// Connection-level receive window. Default 16 MiB.
    public var connectionWindow: Int32
    /// Keepalive policy.
    public var keepalive: Keepalive
    /// Where handler tasks run. `true` (the default): on their connection's event loop (as the task
    /// executor preference), which saves two thread hops per call; handlers must then not block the
    /// thread (long CPU work or blocking syscalls belong on a thread pool). `false`: Swift's global
    /// concurrent executor.
    public var runHandlersOnEventLoop: Bool

    /// Server keepalive: PINGs on idle connections, and how often clients may ping.
    public struct Keepalive: Sendable {
        /// Send a PING after this long without reading from the connection; `nil` disables. Default 2 hours.
        public var pingInterval: Duration?
        /// Close the connection if a PING is not acknowledged within this long. Default 20 s.
        public var pingTimeout: Duration
        /// Client PINGs closer together than this count as strikes. Default 5 minutes (gRPC's default).
        public var minimumReceivedPingInterval: Duration
        /// Whether clients may ping while no call is open; if not, such PINGs must be 2 hours apart. Default `false`.
        public var permitPingsWithoutCalls: Bool
        /// Strikes tolerated before the server answers GOAWAY ENHANCE_YOUR_CALM ("too_many_pings")
        /// and closes. A new call resets the count. Default 2.
        public var maximumPingStrikes: Int

        public init(
            pingInterval: Duration? = .seconds(7200),
            pingTimeout: Duration = .seconds(20),
            minimumReceivedPingInterval: Duration = .seconds(300),
            permitPingsWithoutCalls: Bool = false,
            maximumPingStrikes: Int = 2
        ) {
            self.pingInterval = pingInterval
            self.pingTimeout = pingTimeout
            self.minimumReceivedPingInterval = minimumReceivedPingInterval
            self.permitPingsWithoutCalls = permitPingsWithoutCalls
            self.maximumPingStrikes = maximumPingStrikes
        }
    }

    public init(
        host: String = "127.0.0.1",
        port: Int = 0,
        tls: TLSConfiguration? = nil,
        maxReceiveMessageSize: Int = 4 * 1024 * 1024,
        maxConcurrentStreams: UInt32 = 1000,
        maxAssemblingBytesPerConnection: Int = 64 * 1024 * 1024,
        abortedCallLinger: Duration = .seconds(5),
        maxHeaderListSize: UInt32 = 16 * 1024,
        streamWindow: UInt32 = 1024 * 1024,
        connectionWindow: Int32 = 16 * 1024 * 1024,
        keepalive: Keepalive = Keepalive(),
        runHandlersOnEventLoop: Bool = true
    ) {
        self.host = host
        self.port = port
        self.tls = tls
        self.maxReceiveMessageSize = maxReceiveMessageSize
        self.maxConcurrentStreams = maxConcurrentStreams
        self.maxAssemblingBytesPerConnection = maxAssemblingBytesPerConnection
        self.abortedCallLinger = abortedCallLinger
        self.maxHeaderListSize = maxHeaderListSize
        self.streamWindow = streamWindow
        self.connectionWindow = connectionWindow
        self.keepalive = keepalive
        self.runHandlersOnEventLoop = runHandlersOnEventLoop
    }

    var http2Settings: HTTP2LocalSettings {
        HTTP2LocalSettings(
            maxConcurrentStreams: maxConcurrentStreams,
            initialStreamWindow: streamWindow,
            connectionWindow: connectionWindow,
            maxHeaderListSize: maxHeaderListSize
        )
    }
}
