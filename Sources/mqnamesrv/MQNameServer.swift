import ArgumentParser
import Foundation
import Logging
import RocketMQAPI
import RocketMQNameServer
import RocketRPC
import RocketRPCServices
import ServerAllocator
import ServiceLifecycle

/// `mqnamesrv`: one NameServer — the broker registry (`rocketmq.namesrv.v1.NameServer`), the
/// `QueryRoute` part of `apache.rocketmq.v2.MessagingService`, gRPC health and reflection — on one port.
///
/// Settings come from flags, else `ROCKETMQ_NAMESRV_*` environment variables, else defaults.
/// SIGTERM or SIGINT shut it down gracefully.
@main
struct MQNameServer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mqnamesrv",
        abstract: "A RocketMQ NameServer: brokers register here, clients ask it for routes."
    )

    @Option(help: "Address to bind; 0.0.0.0 for every interface. [env: ROCKETMQ_NAMESRV_HOST] (default: 127.0.0.1)")
    var host: String?

    @Option(help: "Port to listen on; 0 picks a free one. [env: ROCKETMQ_NAMESRV_PORT] (default: 9876)")
    var port: Int?

    @Option(help: "Seconds a broker may stay silent before it is forgotten. [env: ROCKETMQ_NAMESRV_BROKER_EXPIRY] (default: 120)")
    var brokerExpiry: Double?

    @Option(help: "trace, debug, info, notice, warning, error or critical. [env: ROCKETMQ_NAMESRV_LOG_LEVEL] (default: info)")
    var logLevel: String?

    func validate() throws {
        let settings = try resolved()
        guard (0...65535).contains(settings.port) else { throw ValidationError("--port must be 0...65535") }
        guard settings.brokerExpiry > 0 else { throw ValidationError("--broker-expiry must be positive") }
    }

    func run() async throws {
        let allocator = ServerAllocator.activate()
        let settings = try resolved()
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = settings.logLevel
            return handler
        }
        let logger = Logger(label: "rocketmq.namesrv")
        logger.info("memory allocator: \(allocator)")

        let nameServer = NameServer(
            configuration: NameServerConfiguration(brokerExpiry: .milliseconds(Int64(settings.brokerExpiry * 1000))),
            logger: logger
        )
        let health = HealthService(serving: [Rocketmq_Namesrv_V1_NameServer.serviceName, Apache_Rocketmq_V2_MessagingService.serviceName])
        let services = nameServer.services + [health]
        let server = RPCServer(
            configuration: ServerConfiguration(host: settings.host, port: settings.port),
            services: services + ServerReflection.services(describing: services),
            logger: logger
        )
        try await server.start()
        // Scripts and tests read this line to learn the port.
        FileHandle.standardOutput.write(Data("mqnamesrv listening on \(settings.host):\(server.localPort ?? settings.port)\n".utf8))

        let group = ServiceGroup(
            services: [ServerService(server: server, health: health), ExpirySweepService(nameServer: nameServer)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
        try await group.run()
    }

    /// Flags over environment over defaults.
    private func resolved() throws -> Settings {
        let environment = ProcessInfo.processInfo.environment
        func env<T>(_ name: String, _ parse: (String) -> T?) throws -> T? {
            guard let text = environment[name], !text.isEmpty else { return nil }
            guard let value = parse(text) else { throw ValidationError("\(name)=\(text) is not valid") }
            return value
        }
        let levelName = try logLevel ?? env("ROCKETMQ_NAMESRV_LOG_LEVEL") { $0 } ?? "info"
        guard let level = Logger.Level(rawValue: levelName.lowercased()) else { throw ValidationError("unknown log level \(levelName)") }
        return Settings(
            host: try host ?? env("ROCKETMQ_NAMESRV_HOST") { $0 } ?? "127.0.0.1",
            port: try port ?? env("ROCKETMQ_NAMESRV_PORT") { Int($0) } ?? 9876,
            brokerExpiry: try brokerExpiry ?? env("ROCKETMQ_NAMESRV_BROKER_EXPIRY") { Double($0) } ?? 120,
            logLevel: level
        )
    }

    private struct Settings {
        var host: String
        var port: Int
        var brokerExpiry: Double
        var logLevel: Logger.Level
    }
}
