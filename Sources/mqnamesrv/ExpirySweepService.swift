import RocketMQNameServer
import ServiceLifecycle

/// Runs the NameServer's sweep of expired brokers until graceful shutdown.
struct ExpirySweepService: Service {
    let nameServer: NameServer

    func run() async throws {
        await cancelWhenGracefulShutdown { [nameServer] in await nameServer.run() }
    }
}
