import Hummingbird
import Logging
import NIOCore
import RocketMQBroker
import ServiceLifecycle

/// `GET /metrics`: the broker's `BrokerMetrics` for a Prometheus scraper, on a port of its own
/// (the gRPC port speaks HTTP/2 with prior knowledge only, which scrapers do not). Anything else
/// is 404. A port it cannot take is an error at start-up: a deployment that asked for metrics
/// and gets none should fail loudly, not be found out on the first dashboard.
struct MetricsEndpoint: Service {
    let host: String
    let port: Int
    let metrics: BrokerMetrics
    let logger: Logger
    let onStarted: @Sendable (Int) -> Void

    func run() async throws {
        let router = Router()
        let metrics = self.metrics
        router.get("/metrics") { _, _ in
            let body = await metrics.render()
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
        }
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "rocketmq-metrics"),
            onServerRunning: { [onStarted] channel in onStarted(channel.localAddress?.port ?? 0) },
            logger: logger)
        // `run()`, as the console: the broker's service group owns signals and shutdown order.
        do {
            try await app.run()
        } catch {
            // NIO's bind error names neither the port's purpose nor the port.
            throw MetricsEndpointError(description: "metrics port \(port) on \(host): \(error)")
        }
    }
}

struct MetricsEndpointError: Error, CustomStringConvertible {
    var description: String
}
