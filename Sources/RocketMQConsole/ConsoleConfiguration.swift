import RocketMQAdmin

/// Where the console listens and which broker it shows.
public struct ConsoleConfiguration: Sendable {
    /// Address to listen on. Default `127.0.0.1`: the console is read-only, but it shows message
    /// bodies, so it is not exposed beyond the machine unless asked.
    public var host: String = "127.0.0.1"
    /// HTTP port. Default 8080; 0 picks a free one.
    public var port: Int = 8080
    /// The broker whose Admin service the pages read, looked up per request (a broker in the
    /// same process may bind its port after the console starts). `nil` until known.
    public var broker: @Sendable () -> ServerAddress?

    public init(host: String = "127.0.0.1", port: Int = 8080, broker: @escaping @Sendable () -> ServerAddress?) {
        self.host = host
        self.port = port
        self.broker = broker
    }
}
