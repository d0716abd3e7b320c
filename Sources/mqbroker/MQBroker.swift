import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import RocketMQBroker
import RocketMQAdmin
import RocketMQConsole
import RocketMQNameServer
import RocketMQStore
import RocketRPC
import RocketRPCServices
import ServerAllocator
import ServiceLifecycle
import Synchronization

/// `mqbroker`: a RocketMQ broker speaking `apache.rocketmq.v2` over gRPC.
///
/// Configuration comes from (lowest to highest precedence) built-in defaults, `--config FILE`
/// (JSON), `ROCKETMQ_*` environment variables, then flags.
@main
struct MQBroker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mqbroker",
        abstract: "Run a RocketMQ broker (apache.rocketmq.v2 over gRPC; protobuf-c over nghttp2)."
    )

    @Flag(help: "Single-node development mode: data under ./data, topics and groups auto-created.")
    var dev = false

    @Option(help: "JSON config file (keys as in BrokerFileConfig: host, port, dataDirectory, flushMode, topics, groups, ...).")
    var config: String?

    @Option(name: [.customLong("data"), .customLong("data-dir")], help: "Data directory (default ./data in --dev, else ~/rocketmq-swift/store).")
    var dataDirectory: String?

    @Option(help: "Address to listen on (default 127.0.0.1).")
    var host: String?

    @Option(help: "gRPC port (default 8081; 0 = any free port).")
    var port: Int?

    @Option(help: "host:port put in routes when clients must use another address than the listen one.")
    var advertisedAddress: String?

    @Option(name: [.customShort("n"), .customLong("namesrv")], help: "NameServer addresses, host:port, separated by ';' (repeatable).")
    var nameServers: [String] = []

    @Option(help: "Cluster name (default DefaultCluster).")
    var cluster: String?

    @Option(help: "Broker name (default broker-a).")
    var brokerName: String?

    @Option(help: "ASYNC_MASTER (default), SYNC_MASTER (each send also waits for a slave) or SLAVE (a read-only copy of --master).")
    var role: String?

    @Option(help: "Broker id: 0 for a master (default), 1, 2, ... for slaves (a slave defaults to 1).")
    var brokerId: Int32?

    @Option(help: "A slave's master: host:port of its gRPC port. Master and slave need the same --admin-token when admin auth is on.")
    var master: String?

    @Option(help: "etcd endpoints host:port, separated by ';': the broker group elects its master there (automatic failover). --role is then the kind of master, --broker-id this member's id (1, 2, ...).")
    var etcd: String?

    @Option(help: "With --etcd: seconds the master's lease lives without renewal (default 10): how soon a slave takes over, and how soon a master cut off from etcd stops writing.")
    var failoverTtl: Int?

    @Option(help: "Seconds a master with NameServers holds writes at start while none has answered its registration (default 10; 0: take writes at once). A master that a NameServer refuses (a promoted slave replaced it) never takes one.")
    var registrationHold: Int?

        @Option(help: "sync (answer after fdatasync, group commit) or async (default).")
    var flush: FlushMode?

    @Option(help: "CommitLog segment size in bytes (default 1 GiB).")
    var segmentSize: Int64?

    @Flag(help: "Let recovery cut the CommitLog at a damaged record below the end the last checkpoint recorded as synced, dropping every record after it. Without it such a broker refuses to start and names the damaged segment.")
    var forceRecovery = false

    @Option(help: "MiB of CommitLog kept in the page cache behind the flushed position; older pages are dropped once flushed (default 1024; 0: never dropped, the kernel decides).")
    var pageCacheWindow: Int64?

    static let defaultPageCacheWindowMiB: Int64 = 1024

    @Option(help: "Event-loop threads serving gRPC connections (default: one per core).")
    var eventLoops: Int?

    @Flag(help: "Create unknown topics and groups on first use (on in --dev).")
    var autoCreate = false

    @Option(help: "Credential for state-changing admin calls (default: generated into <data>/config/adminToken; none in --dev).")
    var adminToken: String?

    @Option(help: "In --dev, the port of the in-process NameServer (default 9876; 0 = any free port).")
    var namesrvPort = 9876

    @Option(help: "Serve the web console on this port (127.0.0.1 only; 8080 in --dev; 0 = any free port).")
    var consolePort: Int?

    @Flag(help: "Do not serve the web console (which --dev does).")
    var noConsole = false

    @Option(help: "Serve Prometheus metrics at http://<host>:<port>/metrics (off by default; 0 = any free port).")
    var metricsPort: Int?

    mutating func validate() throws {
        if let consolePort, !(0...65535).contains(consolePort) {
            throw ValidationError("--console-port must be 0...65535, got \(consolePort)")
        }
        if let metricsPort, !(0...65535).contains(metricsPort) {
            throw ValidationError("--metrics-port must be 0...65535, got \(metricsPort)")
        }
    }

    mutating func run() async throws {
        let allocator = ServerAllocator.activate()
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = ProcessInfo.processInfo.environment["ROCKETMQ_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
            return handler
        }
        let logger = Logger(label: "rocketmq.mqbroker")
        logger.info("memory allocator: \(allocator)")
        let file = try config.map(BrokerFileConfig.load) ?? BrokerFileConfig()
        let environment = ProcessInfo.processInfo.environment

        let data = dataDirectory ?? environment["ROCKETMQ_DATA_DIR"] ?? file.dataDirectory
            ?? (dev ? "./data" : NSHomeDirectory() + "/rocketmq-swift/store")
        var configuration = BrokerConfiguration(dataDirectory: data)
        do {
            try RuntimeConfig.apply(file.settings ?? [:], to: &configuration)
        } catch {
            throw ValidationError("config file \(config ?? ""): \(error)")
        }
        configuration.host = host ?? environment["ROCKETMQ_HOST"] ?? file.host ?? configuration.host
        configuration.port = port ?? environment["ROCKETMQ_PORT"].flatMap(Int.init) ?? file.port ?? configuration.port
        configuration.advertisedAddress = advertisedAddress ?? environment["ROCKETMQ_ADVERTISED_ADDRESS"] ?? file.advertisedAddress
        let namesrv = nameServers.isEmpty ? (environment["ROCKETMQ_NAMESRV"].map { [$0] } ?? file.nameServers ?? []) : nameServers
        configuration.nameServers = namesrv.flatMap { $0.split(separator: ";").map { String($0).trimmingCharacters(in: .whitespaces) } }
            .filter { !$0.isEmpty }
        configuration.clusterName = cluster ?? file.clusterName ?? configuration.clusterName
        configuration.brokerName = brokerName ?? file.brokerName ?? configuration.brokerName
        let roleText = role ?? environment["ROCKETMQ_ROLE"] ?? file.role
        if let roleText {
            guard let parsed = BrokerRole(parsing: roleText) else {
                throw ValidationError("role must be ASYNC_MASTER, SYNC_MASTER or SLAVE, got \(roleText)")
            }
            configuration.role = parsed
        }
        configuration.masterAddress = master ?? environment["ROCKETMQ_MASTER"] ?? file.masterAddress
        let idFromEnvironment = try environment["ROCKETMQ_BROKER_ID"].map { value in
            guard let id = Int32(value) else { throw ValidationError("ROCKETMQ_BROKER_ID must be a number, got \(value)") }
            return id
        }
        let etcdText = etcd ?? environment["ROCKETMQ_ETCD"] ?? file.etcd
        configuration.etcdEndpoints = (etcdText ?? "").split(separator: ";").map { String($0).trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        if let seconds = failoverTtl ?? file.failoverTTLSeconds {
            guard seconds >= 3 else { throw ValidationError("the failover TTL must be at least 3 seconds, got \(seconds)") }
            configuration.failoverLeaseTTL = .seconds(seconds)
        }
        if let seconds = registrationHold ?? file.registrationHoldSeconds {
            guard seconds >= 0 else { throw ValidationError("the registration hold must be 0 (off) or a number of seconds, got \(seconds)") }
            configuration.registrationHold = .seconds(seconds)
        }
        // A slave, and every member of an etcd-elected group, defaults to id 1; a master to 0.
        let memberByDefault = configuration.role == .slave || !configuration.etcdEndpoints.isEmpty
        configuration.brokerId = brokerId ?? idFromEnvironment ?? file.brokerId ?? (memberByDefault ? 1 : 0)
        if let millis = file.replicationTimeoutMillis {
            guard millis > 0 else { throw ValidationError("replicationTimeoutMillis must be positive, got \(millis)") }
            configuration.replicationTimeout = .milliseconds(millis)
        }
        configuration.store.flushMode = flush ?? environment["ROCKETMQ_FLUSH"].flatMap(FlushMode.init(rawValue:)) ?? file.flushMode ?? .async
        if let size = segmentSize ?? file.segmentSize { configuration.store.commitLogSegmentSize = size }
        configuration.store.forceRecovery = forceRecovery
        // 1 GiB by default: the log's cache footprint stays bounded (page cache counts against
        // a container's memory limit), and after the first GiB new writes reuse freed pages. On
        // a VM whose host backs memory on first touch, a broker writing into never-used pages
        // spent ~45% more CPU per send (5.6 -> 8.4 us, see BENCHMARKS.md); with the window it
        // returns to 5.2-5.7 us once the window has filled.
        let window = pageCacheWindow ?? file.pageCacheWindow ?? Self.defaultPageCacheWindowMiB
        guard (0...(Int64.max >> 20)).contains(window) else {
            throw ValidationError("page-cache window must be 0 (off) or a positive number of MiB, got \(window)")
        }
        configuration.store.pageCacheWindow = window > 0 ? window << 20 : nil
        logger.info("CommitLog page-cache window: \(window > 0 ? "\(window) MiB" : "off (the kernel decides)")")
        let autoCreate = dev || autoCreate || (file.autoCreate ?? false)
        configuration.autoCreateTopics = autoCreate
        configuration.autoCreateGroups = autoCreate

        if !dev {
            configuration.adminToken = try adminToken ?? environment["ROCKETMQ_ADMIN_TOKEN"] ?? file.adminToken
                ?? AdminToken.loadOrCreate(in: data + "/config", logger: logger)
        }
        // Every setting is checked before the store opens: a bad one must not cost a crash
        // recovery at the next start.
        let loopsFromEnvironment = try environment["ROCKETMQ_EVENT_LOOPS"].map { value in
            guard let loops = Int(value) else { throw ValidationError("ROCKETMQ_EVENT_LOOPS must be a number, got \(value)") }
            return loops
        }
        let loops = eventLoops ?? loopsFromEnvironment ?? file.eventLoops
        if let loops, loops < 1 { throw ValidationError("event loops must be at least 1, got \(loops)") }
        let metricsPort = try self.metricsPort ?? environment["ROCKETMQ_METRICS_PORT"].map { value in
            guard let port = Int(value) else { throw ValidationError("ROCKETMQ_METRICS_PORT must be a number, got \(value)") }
            return port
        } ?? file.metricsPort
        if let metricsPort, !(0...65535).contains(metricsPort) { throw ValidationError("the metrics port must be 0...65535, got \(metricsPort)") }

        let settings = configuration
        let broker = try Broker(configuration: settings, logger: logger)
        do {
            // A slave's topics and groups are its master's copy: the file's apply once it is master.
            if broker.isSlave {
                broker.applyWhenMaster(topics: file.topics ?? [], groups: file.groups ?? [])
            } else {
                try broker.seed(topics: file.topics ?? [], groups: file.groups ?? [])
            }
        } catch {
            await broker.shutdown()
            throw ValidationError("config file \(config ?? ""): \(error)")
        }

        var background: [any Service] = [
            // Consumer progress snapshots, so restarts replay little; the broker's own shutdown
            // writes the final one.
            Periodically(every: .seconds(5)) { await broker.persistProgress() },
            // Check-backs of transactions left open.
            Periodically(every: .milliseconds(500)) { await broker.checkTransactions() },
            // A slave's stream from its master (idle on a master).
            UntilShutdown { await broker.runReplication() },
            // With --etcd: the broker group's election (automatic failover).
            UntilShutdown { await broker.runFailover() },
        ]
        var nameServerAddresses = settings.nameServers
        if dev {
            // One-command single node: a NameServer in this process, the broker registered with it.
            let nameServer = NameServer(logger: logger)
            let nameServerHealth = HealthService(serving: ["rocketmq.namesrv.v1.NameServer", "apache.rocketmq.v2.MessagingService"])
            let nameServerServices = nameServer.services + [nameServerHealth]
            let nameServerRPC = RPCServer(
                configuration: ServerConfiguration(host: settings.host, port: namesrvPort),
                services: nameServerServices + ServerReflection.services(describing: nameServerServices),
                logger: logger)
            let bound = BoundPort()
            background.append(RPCServerService(server: nameServerRPC, onStarted: { port in
                bound.set(port)
                say("mqnamesrv (in-process) listening on \(settings.host):\(port)")
            }))
            background.append(UntilShutdown { await nameServer.run() })
            nameServerAddresses.append("dev-namesrv")
            let fallbackPort = namesrvPort
            background.append(RegistrarService(broker: broker, nameServers: { addresses in
                addresses.map { $0 == "dev-namesrv" ? "127.0.0.1:\(bound.value ?? fallbackPort)" : $0 }
            }, configured: nameServerAddresses, waitFor: bound, logger: logger))
        } else if !nameServerAddresses.isEmpty {
            background.append(RegistrarService(broker: broker, nameServers: { $0 }, configured: nameServerAddresses, waitFor: nil, logger: logger))
        }

        // A master answers writes only once its NameServers accepted it (not a former master
        // that a promotion replaced): see `Broker.holdWritesUntilRegistered()`.
        if !nameServerAddresses.isEmpty { broker.holdWritesUntilRegistered() }

        // One loop per core unless configured. On two shared cores one loop answered h2load's
        // SendMessage a few percent faster (less contention for the CommitLog writer) but cut
        // the end-to-end maximum (produce and consume on one thread) by ~15%: see BENCHMARKS.md.
        let eventLoopGroup = loops.map { MultiThreadedEventLoopGroup(numberOfThreads: $0) }
        logger.info("serving gRPC on \(loops ?? NIOSingletons.groupLoopCountSuggestion) event loops")
        let health = HealthService(serving: ["apache.rocketmq.v2.MessagingService"])
        let services: [any RPCService] = [
            MessagingServiceProvider(broker: broker), AdminServiceProvider(broker: broker), ReplicationServiceProvider(broker: broker), health,
        ]
        let server = RPCServer(
            configuration: ServerConfiguration(
                host: configuration.host, port: configuration.port,
                maxReceiveMessageSize: configuration.maxReceiveMessageSize),
            services: services + ServerReflection.services(describing: services),
            eventLoopGroup: eventLoopGroup,
            logger: logger)
        let brokerPort = BoundPort()
        let serverService = RPCServerService(server: server, onStarted: { port in
            let address = settings.routeAddress(boundPort: port)
            broker.setRouteAddress(address)
            brokerPort.set(port)
            say("mqbroker listening on \(settings.host):\(port) (clients: endpoints \(address))")
        }, onShutdown: {
            health.enterShutdown()
            // Slaves' streams end now rather than holding the server's drain; with etcd, the
            // master's key is given up so a slave takes over at once.
            Task { await broker.beginShutdown() }
        })
        // The console reads this broker through its Admin service, over loopback.
        if !noConsole, let port = consolePort ?? (dev ? 8080 : nil) {
            let adminHost = ["0.0.0.0", "::", ""].contains(settings.host) ? "127.0.0.1" : settings.host
            let console = Console(
                configuration: ConsoleConfiguration(port: port, broker: { brokerPort.value.map { ServerAddress(host: adminHost, port: $0) } }),
                logger: logger,
                onStarted: { say("console listening on http://127.0.0.1:\($0)/") })
            background.append(console)
        }
        if let metricsPort {
            let host = settings.host
            background.append(MetricsEndpoint(
                host: host, port: metricsPort, metrics: BrokerMetrics(broker: broker), logger: logger,
                onStarted: { say("metrics listening on http://\(host.contains(":") ? "[\(host)]" : host):\($0)/metrics") }))
        }
        let group = ServiceGroup(
            services: background + [serverService],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        do {
            try await group.run()
        } catch {
            // A service failed (a port it could not take, say): the store still closes cleanly.
            await broker.shutdown()
            throw error
        }
        await broker.shutdown()
        logger.info("broker stopped cleanly")
    }
}

/// Runs `work` every `interval` until graceful shutdown, which ends the sleep early.
struct Periodically: Service {
    let interval: Duration
    let work: @Sendable () async -> Void

    init(every interval: Duration, _ work: @escaping @Sendable () async -> Void) {
        self.interval = interval
        self.work = work
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                await work()
            }
        }
    }
}

/// Keeps the broker registered with its NameServers once the broker's address is known.
struct RegistrarService: Service {
    let broker: Broker
    /// Resolves placeholder addresses (the in-process dev NameServer) once its port is bound.
    let nameServers: @Sendable ([String]) -> [String]
    let configured: [String]
    let waitFor: BoundPort?
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            // The registration carries the broker's bound address; wait for both servers to listen.
            while !broker.hasBoundAddress || (waitFor.map { $0.value == nil } ?? false) {
                guard (try? await Task.sleep(for: .milliseconds(20))) != nil else { return }
            }
            let registrar = NameServerRegistrar(
                nameServers: nameServers(configured), logger: logger, onRefused: { [broker] in broker.supersededAsMaster($0.message) }
            ) { [broker] in
                broker.registration
            }
            broker.onTopicsChanged { registrar.registrationChanged() }
            await withDiscardingTaskGroup { group in
                group.addTask { await registrar.run() }
                // A master's writes held at start open once the NameServers accepted it.
                group.addTask { await broker.awaitRegistrationVerdict(nameServers: registrar.usableNameServers.count, accepted: { registrar.registeredWith.count }) }
            }
        }
    }
}

/// Runs `body` (a loop that returns only when cancelled) until graceful shutdown: the in-process
/// NameServer's expiry sweep, a slave's replication, the etcd election.
struct UntilShutdown: Service {
    let body: @Sendable () async -> Void

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await body()
        }
    }
}

/// A port learned once a server is bound.
final class BoundPort: Sendable {
    private let port = Mutex<Int?>(nil)
    func set(_ value: Int) { port.withLock { $0 = value } }
    var value: Int? { port.withLock { $0 } }
}

/// The admin credential of a non-dev broker that was given none: generated once, kept in
/// `<data>/config/adminToken` (readable by the owner only), reused on later starts.
enum AdminToken {
    static func loadOrCreate(in directory: String, logger: Logger) throws -> String {
        let path = directory + "/adminToken"
        if let data = FileManager.default.contents(atPath: path) {
            let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if !token.isEmpty { return token }
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var generator = SystemRandomNumberGenerator()
        let token = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
        guard FileManager.default.createFile(atPath: path, contents: Data(token.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw ValidationError("cannot write the admin token to \(path)")
        }
        logger.notice("generated an admin token for state-changing admin calls", metadata: ["path": "\(path)"])
        return token
    }
}

/// The JSON config file's shape; every key optional.
struct BrokerFileConfig: Codable {
    var host: String?
    var port: Int?
    var advertisedAddress: String?
    var dataDirectory: String?
    var nameServers: [String]?
    var clusterName: String?
    var brokerName: String?
    /// ASYNC_MASTER, SYNC_MASTER or SLAVE (see `--role`).
    var role: String?
    var brokerId: Int32?
    /// A slave's master, host:port (see `--master`).
    var masterAddress: String?
    /// A sync master's wait for a slave's acknowledgement (default 3000).
    var replicationTimeoutMillis: Int?
    /// etcd endpoints, "host:port;host:port" (see `--etcd`).
    var etcd: String?
    /// See `--failover-ttl`.
    var failoverTTLSeconds: Int?
    /// See `--registration-hold`.
    var registrationHoldSeconds: Int?
    var flushMode: FlushMode?
    var segmentSize: Int64?
    /// MiB; 0 = never dropped (see `--page-cache-window`).
    var pageCacheWindow: Int64?
    /// Event-loop threads for gRPC connections (see `--event-loops`).
    var eventLoops: Int?
    var autoCreate: Bool?
    var adminToken: String?
    /// Port of the Prometheus endpoint (see `--metrics-port`); absent: no endpoint.
    var metricsPort: Int?
    var topics: [TopicConfig]?
    var groups: [GroupConfig]?
    /// Runtime settings by name, as `mqadmin` and `UpdateBrokerConfig` take them (for example
    /// `"transactionCheckIntervalMillis": "60000"`); changes made at runtime override them.
    var settings: [String: String]?

    static func load(_ path: String) throws -> BrokerFileConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("cannot read config file \(path)")
        }
        let config = try JSONDecoder().decode(BrokerFileConfig.self, from: data)
        try checkKeys(of: data, in: path)
        return config
    }

    /// A misspelled key (`flushmode`) would be ignored by the decoder, and the broker would start
    /// with the default in its place without a word: each key must be one the file knows.
    private static func checkKeys(of data: Data, in path: String) throws {
        guard let top = try JSONSerialization.jsonObject(with: data) as? [String: Any] else { return }
        func check(_ object: [String: Any], known: [String], where place: String) throws {
            for key in object.keys.sorted() where !known.contains(key) {
                let hint = known.first { $0.lowercased() == key.lowercased() }.map { " (did you mean \"\($0)\"?)" } ?? ""
                throw ValidationError("unknown key \"\(key)\"\(place) in \(path)\(hint); known: \(known.joined(separator: ", "))")
            }
        }
        func labels(_ value: Any) -> [String] { Mirror(reflecting: value).children.compactMap(\.label) }
        try check(top, known: labels(BrokerFileConfig()), where: "")
        for (field, sample) in [("topics", labels(TopicConfig(name: ""))), ("groups", labels(GroupConfig(name: "")))] {
            for case let entry as [String: Any] in top[field] as? [Any] ?? [] {
                try check(entry, known: sample, where: " of an entry of \"\(field)\"")
            }
        }
    }
}

extension FlushMode: ExpressibleByArgument {}

/// Prints a line at once: scripts and tests read it while the process runs.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
