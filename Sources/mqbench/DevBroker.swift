import Foundation
import Logging
import RocketMQBroker
import RocketMQStore
import RocketRPC

/// `mqbench --dev`: a broker in the benchmark's own process, on a free loopback port, with
/// auto-created topics and groups and no admin credential, as `mqbroker --dev` has. Its data
/// lives in a temporary directory removed at the end, unless `--data` names one.
struct DevBroker {
    let broker: Broker
    let server: RPCServer
    let endpoint: String
    /// The data directory when it is ours to remove.
    let temporary: URL?

    static func start(flush: FlushMode, data: String?) async throws -> DevBroker {
        // Warnings and errors only, on stderr: stdout carries the summary.
        let logger = Logger(label: "mqbench.dev-broker") { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        let temporary = data == nil ? FileManager.default.temporaryDirectory.appendingPathComponent("mqbench-\(UUID().uuidString)") : nil
        var configuration = BrokerConfiguration(dataDirectory: data ?? temporary?.path ?? ".")
        configuration.store.flushMode = flush
        configuration.autoCreateTopics = true
        configuration.autoCreateGroups = true
        let broker = try Broker(configuration: configuration, logger: logger)
        let services: [any RPCService] = [MessagingServiceProvider(broker: broker), AdminServiceProvider(broker: broker)]
        let server = RPCServer(
            configuration: ServerConfiguration(host: "127.0.0.1", port: 0, maxReceiveMessageSize: configuration.maxReceiveMessageSize),
            services: services, logger: logger)
        do {
            try await server.start()
        } catch {
            await broker.shutdown()
            throw error
        }
        let endpoint = "127.0.0.1:\(server.localPort ?? 0)"
        broker.setRouteAddress(endpoint)
        FileHandle.standardError.write(Data("mqbench: in-process broker on \(endpoint), \(flush.rawValue) flush, data in \(data ?? temporary?.path ?? "")\n".utf8))
        return DevBroker(broker: broker, server: server, endpoint: endpoint, temporary: temporary)
    }

    func stop() async {
        await server.shutdown(gracePeriod: .seconds(2))
        await broker.shutdown()
        if let temporary { try? FileManager.default.removeItem(at: temporary) }
    }
}
