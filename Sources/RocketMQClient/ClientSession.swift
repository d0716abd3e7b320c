import Foundation
import Logging
import RocketRPC
import Synchronization

/// One client's link to the cluster, shared by everything that client does.
///
/// It owns the gRPC channels (one per endpoint), the route cache (refreshed every
/// ``ClientConfiguration/routeRefreshInterval`` and after failures), heartbeats to every broker
/// in use, one Telemetry stream per broker carrying the settings handshake, and fault isolation of
/// endpoints that just failed. ``shutdown()`` ends Telemetry, sends `NotifyClientTermination`
/// and closes the channels.
///
/// What every send and receive reads (whether the session is open, the channels, fresh cached
/// routes, isolated endpoints, the server's settings) sits behind a lock, not on the actor: a
/// call then costs no hop onto the actor and back. The actor serializes what waits (route
/// queries, Telemetry, shutdown).
actor ClientSession {
    typealias Client = Apache_Rocketmq_V2_MessagingService.Client

    nonisolated let configuration: ClientConfiguration
    /// How long a cached route is used without asking again after a refresh of it failed
    /// (whatever the refresh interval).
    static let routeRetryDelay = Duration.seconds(5)
    nonisolated let clientId: String
    nonisolated let role: ClientRole
    nonisolated let logger: Logger
    private nonisolated let headers: RequestHeaders

    /// The state calls read, under a lock (see the type's note).
    private struct Shared {
        var channels: [Endpoint: RPCChannel] = [:]
        var routes: [String: (route: TopicRoute, fetched: ContinuousClock.Instant)] = [:]
        var isolatedUntil: [Endpoint: ContinuousClock.Instant] = [:]
        /// ``shutdown()`` began: no new operation starts.
        var closing = false
        /// The channels are closed: no call can be made.
        var closed = false
        var serverSettings: Apache_Rocketmq_V2_Settings?
    }
    private nonisolated let shared = Mutex(Shared())
    private var telemetryTasks: [Endpoint: Task<Void, Never>] = [:]
    private var background: Task<Void, Never>?
    /// The settings the server merged into ours, from the latest Telemetry answer.
    nonisolated var serverSettings: Apache_Rocketmq_V2_Settings? { shared.withLock { $0.serverSettings } }
    /// Why a server refused our settings, if it found an illegal filter expression in them.
    private var settingsRefusal: RocketMQError?

    init(configuration: ClientConfiguration, role: ClientRole, logger: Logger = Logger(label: "rocketmq.client")) {
        self.configuration = configuration
        self.role = role
        let host = ProcessInfo.processInfo.hostName
        self.clientId = "\(host)@\(ProcessInfo.processInfo.processIdentifier)@\(UUID().uuidString.prefix(8).lowercased())"
        var logger = logger
        logger[metadataKey: "client-id"] = "\(clientId)"
        self.logger = logger
        self.headers = RequestHeaders(clientId: clientId, namespace: configuration.namespace, credentials: configuration.credentials)
    }

    // MARK: Life cycle

    /// Fetches the routes of `topics` (which opens Telemetry to their brokers), waits up to the
    /// request timeout for the server's settings, and starts the heartbeat / route refresh loop.
    /// - Throws: `ILLEGAL_FILTER_EXPRESSION` when a broker refuses the settings for a
    ///   subscription it cannot parse, so that a consumer configured wrong fails at start, not
    ///   at its first receive.
    func start(topics: [String]) async throws(RocketMQError) {
        for topic in topics { _ = try await route(for: topic) }
        await heartbeatAll()
        background = Task { [configuration] in
            while !Task.isCancelled {
                do { try await Task.sleep(for: configuration.heartbeatInterval) } catch { return }
                await self.refreshStaleRoutes()
                await self.heartbeatAll()
            }
        }
        let deadline = ContinuousClock.now + configuration.requestTimeout
        while serverSettings == nil, settingsRefusal == nil, ContinuousClock.now < deadline, !telemetryTasks.isEmpty {
            do { try await Task.sleep(for: .milliseconds(10)) } catch { throw .cancelled }
        }
        if let settingsRefusal { throw settingsRefusal }
        if serverSettings == nil, !telemetryTasks.isEmpty {
            logger.warning("no Telemetry settings from the server yet; using defaults")
        }
    }

    /// Throws ``RocketMQError/shutDown`` once ``shutdown()`` began.
    nonisolated func ensureOpen() throws(RocketMQError) {
        if shared.withLock({ $0.closing }) { throw .shutDown }
    }

    /// Ends Telemetry and the heartbeat loop, tells every broker the client is leaving and closes
    /// the channels. Idempotent. Until it is called, the session's background tasks keep it alive.
    func shutdown() async {
        let wasClosing = shared.withLock { state in
            defer { state.closing = true }
            return state.closing
        }
        guard !wasClosing else { return }
        background?.cancel()
        for task in telemetryTasks.values { task.cancel() }
        for task in telemetryTasks.values { await task.value }
        var request = Apache_Rocketmq_V2_NotifyClientTerminationRequest()
        request.group = role.group.map { resource($0) }
        for endpoint in routedEndpoints {
            _ = try? await call(endpoint, timeout: .seconds(1)) { [request] client, options in
                try await client.notifyClientTermination(request, options: options)
            }
        }
        let channels = shared.withLock { state in
            state.closed = true
            defer { state.channels = [:] }
            return state.channels
        }
        for channel in channels.values { await channel.close() }
    }

    // MARK: Calls

    /// A resource name in the configured namespace.
    nonisolated func resource(_ name: String) -> Apache_Rocketmq_V2_Resource {
        Apache_Rocketmq_V2_Resource(resourceNamespace: configuration.namespace, name: name)
    }

    /// Per-call options: the call's own protocol headers (a request id, the date-time and its
    /// signature; the channel sends the fixed ones) and a deadline.
    nonisolated func options(timeout: Duration? = nil) -> CallOptions {
        CallOptions(timeout: timeout ?? configuration.requestTimeout, metadata: headers.perCallMetadata())
    }

    private nonisolated func client(for endpoint: Endpoint) throws(RocketMQError) -> Client {
        try shared.withLock { (state) throws(RocketMQError) -> Client in
            guard !state.closed else { throw .shutDown }
            if let channel = state.channels[endpoint] { return Client(channel: channel) }
            let channel = makeChannel(to: endpoint)
            state.channels[endpoint] = channel
            return Client(channel: channel)
        }
    }

    /// A new channel to `endpoint` (it connects on its first call).
    private nonisolated func makeChannel(to endpoint: Endpoint) -> RPCChannel {
        let channelConfiguration = ChannelConfiguration(
            host: endpoint.host, port: endpoint.port,
            tls: configuration.tls,
            connectTimeout: max(configuration.requestTimeout, .seconds(1)),
            // Brokers come back after restarts within seconds: keep reconnection attempts frequent.
            backoff: .init(initial: .milliseconds(200), multiplier: 1.6, jitter: 0.2, maximum: .seconds(2)),
            keepalive: .init(pingInterval: configuration.keepaliveInterval, pingTimeout: configuration.keepaliveTimeout),
            maxReceiveMessageSize: 64 << 20,
            defaultCallOptions: CallOptions(metadata: headers.fixedMetadata))
        return RPCChannel(configuration: channelConfiguration)
    }

    /// Runs one call against `endpoint`, turning whatever it throws into a ``RocketMQError``.
    nonisolated func call<R: Sendable>(
        _ endpoint: Endpoint, timeout: Duration? = nil,
        _ body: @Sendable (Client, CallOptions) async throws -> R
    ) async throws(RocketMQError) -> R {
        let client = try client(for: endpoint)
        do {
            return try await body(client, options(timeout: timeout))
        } catch {
            throw RocketMQError.wrapping(error)
        }
    }

    // MARK: Routes

    /// The route of `topic`, from the cache unless it is older than the refresh interval or
    /// `refresh` is set. Asks each configured endpoint in turn until one answers.
    nonisolated func route(for topic: String, refresh: Bool = false) async throws(RocketMQError) -> TopicRoute {
        if !refresh, let route = freshRoute(of: topic) { return route }
        return try await fetchRoute(for: topic)
    }

    /// The cached route of `topic` if it is younger than the refresh interval.
    private nonisolated func freshRoute(of topic: String) -> TopicRoute? {
        shared.withLock { state in
            guard let cached = state.routes[topic], ContinuousClock.now - cached.fetched < configuration.routeRefreshInterval else { return nil }
            return cached.route
        }
    }

    /// Asks the server for the route of `topic` and caches it.
    private func fetchRoute(for topic: String) async throws(RocketMQError) -> TopicRoute {
        var request = Apache_Rocketmq_V2_QueryRouteRequest()
        request.topic = resource(topic)
        request.endpoints = configuration.endpoints.first?.proto
        let response: Apache_Rocketmq_V2_QueryRouteResponse
        do throws(RocketMQError) {
            response = try await firstAnswer(
                noEndpoint: .noQueue(topic: topic, reason: "no endpoint answered"),
                { [request] client, options in try await client.queryRoute(request, options: options) }, status: \.status)
        } catch {
            // The cached route is asked for again only `routeRetryDelay` later: otherwise, while
            // the NameServers are unreachable, every send would first wait for a query that
            // fails (up to the request timeout, for one that does not answer).
            let retryIn = Self.routeRetryDelay
            let cached = shared.withLock { state -> TopicRoute? in
                state.routes[topic]?.fetched = .now - configuration.routeRefreshInterval + retryIn
                return state.routes[topic]?.route
            }
            if let cached {
                logger.warning("route refresh failed; keeping the cached route", metadata: [
                    "topic": "\(topic)", "error": "\(error)", "retry-in": "\(retryIn)"])
                return cached
            }
            throw error
        }
        let route = TopicRoute(topic: topic, queues: response.messageQueues)
        shared.withLock { $0.routes[topic] = (route, .now) }
        openTelemetry(to: route.endpoints)
        // Only this actor adds or replaces routes, and nothing suspends in between.
        closeTelemetry(outside: routedEndpoints)
        return route
    }

    /// Runs one call against each configured endpoint in turn until one answers with OK, and
    /// returns that answer. Any failure moves on to the next endpoint: NameServers do not share
    /// state, and one that just restarted does not know a topic the others route. Throws
    /// `noEndpoint` when no endpoint is configured; otherwise the first status an endpoint
    /// answered (it says more than an unreachable one does), else the last error.
    nonisolated func firstAnswer<R: Sendable>(
        noEndpoint: RocketMQError,
        _ body: @Sendable (Client, CallOptions) async throws -> R,
        status: (R) -> Apache_Rocketmq_V2_Status?
    ) async throws(RocketMQError) -> R {
        var firstStatus: RocketMQError?
        var lastError = noEndpoint
        for endpoint in configuration.endpoints {
            do throws(RocketMQError) {
                let response = try await call(endpoint, body)
                try RocketMQError.check(status(response))
                return response
            } catch {
                lastError = error
                if case .status = error, firstStatus == nil { firstStatus = error }
            }
        }
        throw firstStatus ?? lastError
    }

    /// Makes the next ``route(for:refresh:)`` of `topic` ask the server again.
    nonisolated func invalidateRoute(of topic: String) {
        shared.withLock { $0.routes[topic]?.fetched = .now - configuration.routeRefreshInterval }
    }

    private func refreshStaleRoutes() async {
        for topic in shared.withLock({ Array($0.routes.keys) }) { _ = try? await route(for: topic) }
    }

    /// Every broker endpoint the cached routes name.
    private nonisolated var routedEndpoints: Set<Endpoint> {
        shared.withLock { Set($0.routes.values.flatMap(\.route.endpoints)) }
    }

    // MARK: Fault avoidance

    /// Keeps `endpoint` out of queue selection for `window` after a failure, or until it answers
    /// a heartbeat (``readmit(_:)``).
    nonisolated func isolate(_ endpoint: Endpoint, for window: Duration) {
        shared.withLock { $0.isolatedUntil[endpoint] = .now + window }
        logger.info("isolating a failing endpoint", metadata: ["endpoint": "\(endpoint)", "window": "\(window)"])
    }

    /// Ends `endpoint`'s isolation, if any: it answered a heartbeat, so it is back (as the Java
    /// client does), rather than skipped for the rest of the window.
    nonisolated func readmit(_ endpoint: Endpoint) {
        let wasIsolated = shared.withLock { $0.isolatedUntil.removeValue(forKey: endpoint).map { $0 > .now } ?? false }
        if wasIsolated { logger.info("an isolated endpoint answers again", metadata: ["endpoint": "\(endpoint)"]) }
    }

    /// Endpoints isolated right now.
    nonisolated func isolatedEndpoints() -> Set<Endpoint> {
        shared.withLock { state in
            guard !state.isolatedUntil.isEmpty else { return [] }
            let now = ContinuousClock.now
            state.isolatedUntil = state.isolatedUntil.filter { $0.value > now }
            return Set(state.isolatedUntil.keys)
        }
    }

    // MARK: Heartbeat and Telemetry

    private func heartbeatAll() async {
        var request = Apache_Rocketmq_V2_HeartbeatRequest()
        request.group = role.group.map { resource($0) }
        request.clientType = role.clientType
        for endpoint in routedEndpoints {
            do throws(RocketMQError) {
                let response = try await call(endpoint) { [request] client, options in try await client.heartbeat(request, options: options) }
                try RocketMQError.check(response.status)
                readmit(endpoint)
            } catch {
                logger.debug("heartbeat failed", metadata: ["endpoint": "\(endpoint)", "error": "\(error)"])
            }
        }
    }

    /// The settings this client announces.
    nonisolated var localSettings: Apache_Rocketmq_V2_Settings {
        var settings = Apache_Rocketmq_V2_Settings()
        settings.clientType = role.clientType
        var accessPoint = Apache_Rocketmq_V2_Endpoints()
        accessPoint.scheme = configuration.endpoints.first?.proto.scheme ?? .ipv4
        accessPoint.addresses = configuration.endpoints.map { Apache_Rocketmq_V2_Address(host: $0.host, port: Int32($0.port)) }
        settings.accessPoint = accessPoint
        settings.requestTimeout = Google_Protobuf_Duration(configuration.requestTimeout)
        settings.userAgent = Apache_Rocketmq_V2_UA(
            language: .unspecified, version: RequestHeaders.clientVersion, platform: "Swift on Linux",
            hostname: ProcessInfo.processInfo.hostName)
        if let group = role.group {
            var subscription = Apache_Rocketmq_V2_Subscription()
            subscription.group = resource(group)
            subscription.subscriptions = role.subscriptions.sorted { $0.key < $1.key }.map { topic, filter in
                Apache_Rocketmq_V2_SubscriptionEntry(topic: resource(topic), expression: filter.proto)
            }
            settings.pubSub = .subscription(subscription)
        } else {
            var publishing = Apache_Rocketmq_V2_Publishing()
            publishing.topics = role.topics.map { resource($0) }
            settings.pubSub = .publishing(publishing)
            if let attempts = role.maxSendAttempts {
                // Retried at once, on another broker where there is one (the official clients'
                // immediate-retry policy for sends).
                settings.backoffPolicy = Apache_Rocketmq_V2_RetryPolicy(
                    maxAttempts: Int32(clamping: attempts),
                    strategy: .exponentialBackoff(.init(initial: .init(seconds: 0, nanos: 0), max: .init(seconds: 0, nanos: 0), multiplier: 1)))
            }
        }
        return settings
    }

    private func openTelemetry(to endpoints: Set<Endpoint>) {
        guard !shared.withLock({ $0.closing }) else { return }
        for endpoint in endpoints where telemetryTasks[endpoint] == nil {
            telemetryTasks[endpoint] = Task { await self.runTelemetry(endpoint) }
        }
    }

    /// Ends Telemetry to brokers no cached route names any more (one that moved to another
    /// address after a failover): its stream would be reopened every second for as long as the
    /// client lives. Calls still under way to it (an ack of a message it delivered) are unaffected.
    private func closeTelemetry(outside routed: Set<Endpoint>) {
        for (endpoint, task) in telemetryTasks where !routed.contains(endpoint) {
            task.cancel()
            telemetryTasks[endpoint] = nil
            logger.info("closing Telemetry to a broker no route names any more", metadata: ["endpoint": "\(endpoint)"])
        }
    }

    /// The brokers this client keeps a Telemetry stream open to.
    var telemetryEndpoints: Set<Endpoint> { Set(telemetryTasks.keys) }

    /// Keeps one Telemetry stream open to `endpoint` (reopening it a second after it ends) until cancelled.
    /// Besides the settings handshake it answers the server's commands (see ``reply(to:from:)``).
    private nonisolated func runTelemetry(_ endpoint: Endpoint) async {
        let settings = localSettings
        while !Task.isCancelled {
            // Answers to server commands go out on the same stream as the settings.
            let (replies, replySink) = AsyncStream<Apache_Rocketmq_V2_TelemetryCommand>.makeStream()
            do throws(RocketMQError) {
                try await call(endpoint, timeout: .seconds(365 * 86400)) { client, options in
                    try await client.telemetry(
                        options: options,
                        requests: { writer in
                            try await writer.write(Apache_Rocketmq_V2_TelemetryCommand(command: .settings(settings)))
                            for await reply in replies { try await writer.write(reply) }
                        },
                        handle: { responses in
                            defer { replySink.finish() }
                            for try await command in responses {
                                if let status = command.status, status.code != .ok {
                                    self.logger.warning("Telemetry status", metadata: ["code": "\(status.code)", "message": "\(status.message)"])
                                }
                                switch await self.reply(to: command, from: endpoint) {
                                case .answer(let answer): replySink.yield(answer)
                                case .reconnect: return
                                case .none: break
                                }
                            }
                        })
                }
            } catch {
                if Task.isCancelled { return }
                logger.debug("Telemetry stream ended", metadata: ["endpoint": "\(endpoint)", "error": "\(error)"])
            }
            do { try await Task.sleep(for: .seconds(1)) } catch { return }
        }
    }

    enum TelemetryReply {
        case answer(Apache_Rocketmq_V2_TelemetryCommand)
        case reconnect
        case none
    }

    /// What the client does with one command from the server: merged settings are kept; a
    /// thread-stack request gets a description of this client (Swift tasks cannot be dumped);
    /// a message to verify runs the push consumer's handler when one is registered; a reconnect
    /// request reopens the stream; an orphaned-transaction check runs the producer's transaction
    /// checker on a task of its own, whose answer goes back as `EndTransaction`.
    func reply(to command: Apache_Rocketmq_V2_TelemetryCommand, from endpoint: Endpoint) async -> TelemetryReply {
        switch command.command {
        case .settings(let merged)?:
            apply(merged)
            return .none
        case .printThreadStackTraceCommand(let request)?:
            let (channelCount, topics) = shared.withLock { ($0.channels.count, $0.routes.keys.sorted()) }
            let text = "rocketmq-swift client \(clientId) (\(role.clientType.protoName ?? "client")): "
                + "\(channelCount) channels, routes for \(topics.joined(separator: ", ")); "
                + "Swift tasks have no thread dump"
            return .answer(.init(status: .init(code: .ok, message: "OK"),
                                 command: .threadStackTrace(.init(nonce: request.nonce, threadStackTrace: text))))
        case .verifyMessageCommand(let request)?:
            guard let verifier, let message = request.message,
                  let received = try? ReceivedMessage(message, queue: nil, endpoint: Endpoint(host: "server", port: 0)) else {
                return .answer(.init(status: .init(code: .unsupported, message: "this client has no message handler to verify with"),
                                     command: .verifyMessageResult(.init(nonce: request.nonce))))
            }
            let consumed = await verifier(received)
            let status = consumed
                ? Apache_Rocketmq_V2_Status(code: .ok, message: "OK")
                : Apache_Rocketmq_V2_Status(code: .failedToConsumeMessage, message: "the handler returned failure")
            return .answer(.init(status: status, command: .verifyMessageResult(.init(nonce: request.nonce))))
        case .reconnectEndpointsCommand?:
            return .reconnect
        case .recoverOrphanedTransactionCommand(let check)?:
            guard let checker = transactionChecker, let message = check.message,
                  let received = try? ReceivedMessage(message, queue: nil, endpoint: endpoint)
            else {
                logger.warning("the broker asked about an open transaction; this producer has no transaction checker")
                return .none
            }
            let transactionId = check.transactionId
            Task {
                let resolution = await checker(received)
                guard resolution != .unknown else { return }
                do throws(RocketMQError) {
                    try await self.endTransaction(
                        endpoint: endpoint, topic: received.topic, messageId: received.messageId, transactionId: transactionId,
                        resolution: resolution, fromCheck: true)
                } catch {
                    self.logger.warning("could not answer a transaction check-back", metadata: [
                        "transaction": "\(transactionId)", "error": "\(error)"])
                }
            }
            return .none
        case nil:
            // A subscription the broker cannot parse is wrong on every broker, and no retry
            // mends it: it fails the start. Other statuses alone (about one broker's topics,
            // say, or about our answers to its commands) are logged by the caller.
            if let status = command.status, status.code == .illegalFilterExpression {
                settingsRefusal = .status(code: status.code, message: status.message)
            }
            return .none
        case .threadStackTrace?, .verifyMessageResult?, .notifyUnsubscribeLiteCommand?:
            return .none
        }
    }

    /// Runs a push consumer's handler on a message the server asks to verify.
    private var verifier: (@Sendable (ReceivedMessage) async -> Bool)?
    /// Answers the broker's transaction check-backs (producers).
    private var transactionChecker: TransactionChecker?

    func setTransactionChecker(_ checker: @escaping TransactionChecker) {
        transactionChecker = checker
    }

    /// Commits or rolls back one half message at the broker that stored it.
    nonisolated func endTransaction(
        endpoint: Endpoint, topic: String, messageId: String, transactionId: String, resolution: TransactionResolution, fromCheck: Bool
    ) async throws(RocketMQError) {
        var request = Apache_Rocketmq_V2_EndTransactionRequest()
        request.topic = resource(topic)
        request.messageId = messageId
        request.transactionId = transactionId
        request.resolution = resolution.proto
        request.source = fromCheck ? .sourceServerCheck : .sourceClient
        let response = try await call(endpoint) { [request] client, options in try await client.endTransaction(request, options: options) }
        try RocketMQError.check(response.status)
    }

    /// Registers the handler that answers the server's verify-message commands (push consumers).
    func setVerifier(_ verifier: @escaping @Sendable (ReceivedMessage) async -> Bool) {
        self.verifier = verifier
    }

    private func apply(_ settings: Apache_Rocketmq_V2_Settings) {
        shared.withLock { $0.serverSettings = settings }
    }
}
