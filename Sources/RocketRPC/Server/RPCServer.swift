import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// A gRPC server: listens on one port and serves the registered ``RPCService``s over HTTP/2.
///
/// Thread-safe. Each accepted connection gets its own nghttp2 session on one event loop of
/// the event loop group (default `MultiThreadedEventLoopGroup.singleton`); handlers run as Swift tasks. Lifecycle: ``start()`` binds,
/// ``run()`` waits until shutdown, ``shutdown(gracePeriod:)`` sends GOAWAY, lets in-flight calls finish
/// for up to the grace period, then closes every connection.
public final class RPCServer: Sendable {
    /// The configuration the server was created with.
    public let configuration: ServerConfiguration
    private let router: RPCRouter
    private let logger: Logger
    private let group: any EventLoopGroup

    private struct Connection {
        let channel: any Channel
        let handler: NIOLoopBound<ServerConnectionHandler>
    }

    private struct State {
        var serverChannel: (any Channel)?
        var connections: [ObjectIdentifier: Connection] = [:]
        var shutdownWaiters: [CheckedContinuation<Void, Never>] = []
        var isShutDown = false
    }

    private let state = Mutex(State())

    /// - Parameter eventLoopGroup: where connections run; defaults to `MultiThreadedEventLoopGroup.singleton`.
    public init(
        configuration: ServerConfiguration,
        services: [any RPCService],
        eventLoopGroup: (any EventLoopGroup)? = nil,
        logger: Logger = Logger(label: "rocketmq.rpc.server")
    ) {
        self.configuration = configuration
        var router = RPCRouter()
        for service in services { service.register(into: &router) }
        self.router = router
        self.logger = logger
        self.group = eventLoopGroup ?? MultiThreadedEventLoopGroup.singleton
    }

    /// Names of the services with at least one registered method, sorted.
    public var serviceNames: [String] { router.serviceNames.sorted() }

    /// The bound port once ``start()`` returned.
    public var localPort: Int? { localAddress?.port }

    /// The bound address once ``start()`` returned.
    public var localAddress: SocketAddress? { state.withLock { $0.serverChannel?.localAddress } }

    /// Binds the listening socket.
    /// - Throws: socket errors (address in use, ...), TLS configuration errors.
    public func start() async throws {
        var tlsContext: NIOSSLContext?
        if var tls = configuration.tls {
            if tls.applicationProtocols.isEmpty { tls.applicationProtocols = ["h2"] }
            tlsContext = try NIOSSLContext(configuration: tls)
        }
        let sslContext = tlsContext
        let router = self.router
        let configuration = self.configuration
        let logger = self.logger
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 256 * 1024, high: 1024 * 1024))
            .childChannelInitializer { [weak self] channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = ServerConnectionHandler(router: router, configuration: configuration, logger: logger, allocator: channel.allocator)
                    if let sslContext {
                        try channel.pipeline.syncOperations.addHandler(TLSSniffer(sslContext: sslContext))
                    }
                    try channel.pipeline.syncOperations.addHandler(handler)
                    self?.track(channel: channel, handler: NIOLoopBound(handler, eventLoop: channel.eventLoop))
                }
            }
            .bind(host: configuration.host, port: configuration.port)
            .get()
        state.withLock { $0.serverChannel = channel }
        logger.info("gRPC server listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
    }

    private func track(channel: any Channel, handler: NIOLoopBound<ServerConnectionHandler>) {
        let id = ObjectIdentifier(channel)
        let refused = state.withLock { state -> Bool in
            if state.isShutDown { return true }
            state.connections[id] = Connection(channel: channel, handler: handler)
            return false
        }
        if refused {
            channel.close(promise: nil)
            return
        }
        channel.closeFuture.whenComplete { [weak self] _ in
            self?.state.withLock { _ = $0.connections.removeValue(forKey: id) }
        }
    }

    /// Waits until ``shutdown(gracePeriod:)`` has finished (starting the server first if needed).
    public func run() async throws {
        if state.withLock({ $0.serverChannel == nil && !$0.isShutDown }) { try await start() }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = state.withLock { state -> Bool in
                if state.isShutDown && state.serverChannel == nil { return true }
                state.shutdownWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    /// Stops accepting, sends GOAWAY on every connection, waits up to `gracePeriod` for in-flight calls,
    /// then closes what is left. Idempotent.
    public func shutdown(gracePeriod: Duration = .seconds(10)) async {
        let (serverChannel, connections) = state.withLock { state in
            state.isShutDown = true
            return (state.serverChannel, Array(state.connections.values))
        }
        try? await serverChannel?.close()
        for connection in connections {
            let handler = connection.handler
            connection.channel.eventLoop.execute { handler.value.startGracefulShutdown() }
        }
        let deadline = ContinuousClock.now.advanced(by: gracePeriod)
        for connection in connections {
            let remaining = deadline - ContinuousClock.now
            if remaining > .zero {
                let done = connection.channel.eventLoop.makePromise(of: Void.self)
                connection.channel.closeFuture.cascade(to: done)
                let timer = connection.channel.eventLoop.scheduleTask(in: TimeAmount(remaining)) { done.succeed() }
                _ = try? await done.futureResult.get()
                timer.cancel()
            }
            try? await connection.channel.close()
        }
        let waiters = state.withLock { state in
            state.serverChannel = nil
            defer { state.shutdownWaiters.removeAll() }
            return state.shutdownWaiters
        }
        for waiter in waiters { waiter.resume() }
        logger.info("gRPC server stopped")
    }
}
