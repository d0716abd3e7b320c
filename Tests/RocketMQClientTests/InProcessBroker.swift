import Foundation
import NIOSSL
import RocketMQBroker
import RocketRPC

/// The broker's MessagingService hosted in the test process, for checks that need the broker's
/// inside (its client registry) or a server option `mqbroker` has no flag for (TLS).
struct InProcessBroker {
    let broker: Broker
    let server: RPCServer
    let directory: TemporaryDirectory
    let port: Int

    var endpoint: String { "127.0.0.1:\(port)" }

    static func start(tls: TLSConfiguration? = nil, _ configure: (inout BrokerConfiguration) -> Void = { _ in }) async throws -> InProcessBroker {
        let directory = try TemporaryDirectory("inprocess")
        var configuration = BrokerConfiguration(dataDirectory: directory.file("data"))
        configuration.autoCreateTopics = true
        configuration.autoCreateGroups = true
        configuration.store.commitLogSegmentSize = 4 << 20
        configure(&configuration)
        let broker = try Broker(configuration: configuration)
        let server = RPCServer(configuration: ServerConfiguration(port: 0, tls: tls), services: [MessagingServiceProvider(broker: broker)])
        try await server.start()
        guard let port = server.localPort else { throw TestFailure("the in-process server has no port") }
        broker.setRouteAddress("127.0.0.1:\(port)")
        return InProcessBroker(broker: broker, server: server, directory: directory, port: port)
    }

    func stop() async {
        await server.shutdown(gracePeriod: .seconds(1))
        await broker.shutdown()
        directory.remove()
    }
}
