import RocketRPC
import RocketRPCServices
import ServiceLifecycle

/// Runs a started `RPCServer` as a ServiceLifecycle service: on graceful shutdown, health turns
/// NOT_SERVING and the server drains its calls (brokers' registration streams end, so they reconnect
/// elsewhere) for up to `gracePeriod`.
struct ServerService: Service {
    let server: RPCServer
    let health: HealthService
    var gracePeriod: Duration = .seconds(5)

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await server.run()
        } onGracefulShutdown: { [server, health, gracePeriod] in
            health.enterShutdown()
            Task { await server.shutdown(gracePeriod: gracePeriod) }
        }
    }
}
