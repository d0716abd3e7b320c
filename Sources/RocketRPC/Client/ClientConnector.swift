import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// Keeps a channel's single connection: connects lazily, reuses it for every call, reconnects with
/// back-off after failures, and hands new calls a fresh connection after GOAWAY or close.
///
/// Thread-safe (state behind a `Mutex`; connection attempts run on the event loop group).
final class ClientConnector: Sendable {
    private enum Phase {
        case idle
        case connecting(EventLoopFuture<ClientConnection>)
        case ready(ClientConnection)
        case backingOff(until: ContinuousClock.Instant, error: RPCError)
        case closed
    }

    private struct State {
        var phase: Phase = .idle
        var failures = 0
    }

    private let state = Mutex(State())
    private let configuration: ChannelConfiguration
    private let group: any EventLoopGroup
    private let logger: Logger
    private let sslContext: NIOSSLContext?
    /// Set when the channel can never connect (bad TLS configuration); every call fails with it.
    private let permanentError: RPCError?

    init(configuration: ChannelConfiguration, group: any EventLoopGroup, logger: Logger) throws {
        self.configuration = configuration
        self.group = group
        self.logger = logger
        if let tls = configuration.tls {
            var tlsConfiguration = TLSConfiguration.makeClientConfiguration()
            tlsConfiguration.trustRoots = tls.trustRoots
            tlsConfiguration.certificateVerification = tls.insecureSkipVerify ? .none : .fullVerification
            tlsConfiguration.applicationProtocols = ["h2"]
            tlsConfiguration.certificateChain = tls.certificateChain
            tlsConfiguration.privateKey = tls.privateKey
            sslContext = try NIOSSLContext(configuration: tlsConfiguration)
        } else {
            sslContext = nil
        }
        permanentError = nil
    }

    /// A connector that fails every call with `error`.
    init(failedWith error: RPCError, configuration: ChannelConfiguration, group: any EventLoopGroup, logger: Logger) {
        self.configuration = configuration
        self.group = group
        self.logger = logger
        self.sslContext = nil
        self.permanentError = error
    }

    private enum Step {
        case use(ClientConnection)
        case wait(EventLoopFuture<ClientConnection>)
        case connect(EventLoopPromise<ClientConnection>)
        case sleep(until: ContinuousClock.Instant)
        case fail(RPCError)
    }

    /// The connection, if one is ready: the common case, answered without suspending (the
    /// general ``connection(waitForReady:deadline:)`` is an `async` call with a retry loop).
    var readyConnection: ClientConnection? {
        guard permanentError == nil else { return nil }
        return state.withLock { state in
            if case .ready(let connection) = state.phase { return connection }
            return nil
        }
    }

    /// A ready connection. Without `waitForReady`, fails with `UNAVAILABLE` when the channel is backing
    /// off after a failed attempt (an attempt in progress is awaited); with it, waits until `deadline`.
    func connection(waitForReady: Bool, deadline: ContinuousClock.Instant?) async throws(RPCError) -> ClientConnection {
        if let permanentError { throw permanentError }
        for _ in 0..<10_000 {
            if Task.isCancelled { throw RPCError(code: .cancelled, message: "the call was cancelled while connecting") }
            if let deadline, ContinuousClock.now >= deadline {
                throw RPCError(code: .deadlineExceeded, message: "deadline exceeded while waiting for a connection")
            }
            let step = state.withLock { state -> Step in
                switch state.phase {
                case .ready(let connection):
                    return .use(connection)
                case .connecting(let future):
                    return .wait(future)
                case .idle:
                    let promise = group.next().makePromise(of: ClientConnection.self)
                    state.phase = .connecting(promise.futureResult)
                    return .connect(promise)
                case .backingOff(let until, let error):
                    if ContinuousClock.now >= until {
                        let promise = group.next().makePromise(of: ClientConnection.self)
                        state.phase = .connecting(promise.futureResult)
                        return .connect(promise)
                    }
                    return waitForReady ? .sleep(until: until) : .fail(error)
                case .closed:
                    return .fail(RPCError(code: .unavailable, message: "the channel is closed"))
                }
            }
            switch step {
            case .use(let connection):
                return connection
            case .fail(let error):
                throw error
            case .connect(let promise):
                startConnecting(promise)
                if let connection = try await awaitAttempt(promise.futureResult, waitForReady: waitForReady) { return connection }
            case .wait(let future):
                if let connection = try await awaitAttempt(future, waitForReady: waitForReady) { return connection }
            case .sleep(let until):
                let wake = deadline.map { min($0, until) } ?? until
                do {
                    try await Task.sleep(until: wake, clock: .continuous)
                } catch {
                    throw RPCError(code: .cancelled, message: "the call was cancelled while waiting for a connection")
                }
            }
        }
        throw RPCError(code: .unavailable, message: "gave up waiting for a connection")
    }

    private func awaitAttempt(_ future: EventLoopFuture<ClientConnection>, waitForReady: Bool) async throws(RPCError) -> ClientConnection? {
        do {
            return try await future.get()
        } catch {
            if waitForReady { return nil }
            throw (error as? RPCError) ?? RPCError(code: .unavailable, message: "cannot connect to \(configuration.host):\(configuration.port): \(error)")
        }
    }

    private func startConnecting(_ promise: EventLoopPromise<ClientConnection>) {
        let configuration = self.configuration
        let sslContext = self.sslContext
        let logger = self.logger
        let host = configuration.host
        let serverName = configuration.tls?.serverName ?? (Self.isIPAddress(host) ? nil : host)
        let bootstrap = ClientBootstrap(group: promise.futureResult.eventLoop)
            .connectTimeout(TimeAmount(configuration.connectTimeout))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.writeBufferWaterMark, value: .init(low: 256 * 1024, high: 1024 * 1024))
            .channelInitializer { [weak self] channel in
                let connector = self
                return channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: serverName))
                    }
                    let id = ObjectIdentifier(channel)
                    let handler = ClientConnectionHandler(configuration: configuration, allocator: channel.allocator, logger: logger) {
                        connector?.connectionUnusable(id)
                    }
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
        bootstrap.connect(host: host, port: configuration.port).flatMapThrowing { channel in
            let handler = try channel.pipeline.syncOperations.handler(type: ClientConnectionHandler.self)
            return ClientConnection(channel: channel, handler: NIOLoopBound(handler, eventLoop: channel.eventLoop))
        }.whenComplete { [weak self] result in
            guard let self else {
                promise.completeWith(result)
                return
            }
            switch result {
            case .success(let connection):
                let closed = self.state.withLock { state -> Bool in
                    if case .closed = state.phase { return true }
                    state.phase = .ready(connection)
                    state.failures = 0
                    return false
                }
                if closed {
                    connection.channel.close(promise: nil)
                    promise.fail(RPCError(code: .unavailable, message: "the channel is closed"))
                    return
                }
                let id = ObjectIdentifier(connection.channel)
                connection.channel.closeFuture.whenComplete { [weak self] _ in self?.connectionUnusable(id) }
                promise.succeed(connection)
            case .failure(let error):
                let rpcError = RPCError(code: .unavailable, message: "cannot connect to \(host):\(configuration.port): \(error)")
                self.state.withLock { state in
                    if case .closed = state.phase { return }
                    let delay = configuration.backoff.delay(attempt: state.failures)
                    state.failures += 1
                    state.phase = .backingOff(until: ContinuousClock.now.advanced(by: delay), error: rpcError)
                }
                logger.debug("connection attempt failed", metadata: ["error": "\(error)"])
                promise.fail(rpcError)
            }
        }
    }

    /// Takes `connection` out of use (it refused a new stream); the next call connects anew.
    func markUnusable(_ connection: ClientConnection) {
        connectionUnusable(ObjectIdentifier(connection.channel))
    }

    /// The connection closed or received GOAWAY: the next call connects anew.
    private func connectionUnusable(_ id: ObjectIdentifier) {
        state.withLock { state in
            if case .ready(let connection) = state.phase, ObjectIdentifier(connection.channel) == id {
                state.phase = .idle
            }
        }
    }

    /// Stops new calls and closes the current connection (GOAWAY, then close).
    func close() async {
        let current = state.withLock { state -> ClientConnection? in
            defer { state.phase = .closed }
            if case .ready(let connection) = state.phase { return connection }
            return nil
        }
        guard let current else { return }
        let handler = current.handler
        current.eventLoop.execute { handler.value.closeGracefully() }
        try? await current.channel.closeFuture.get()
    }

    private static func isIPAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }
}
