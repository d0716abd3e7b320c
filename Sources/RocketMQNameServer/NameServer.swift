import Logging
import RocketMQAPI
import RocketRPC

/// RocketMQNameServer: the broker registry of a RocketMQ cluster — which brokers are alive, which
/// topics and queues they serve — and the routes clients derive from it.
///
/// A `NameServer` bundles one ``RouteTable`` with the gRPC services that read and write it
/// (``RegistryService`` for brokers and operators, ``RouteQueryService`` for clients' `QueryRoute`)
/// and the sweep that forgets silent brokers. NameServers are independent: run as many as you like,
/// brokers register with each (see ``NameServerRegistrar``).
///
/// Serve ``services`` on an `RPCServer` (with health and reflection if wanted) and keep ``run()``
/// running beside it.
public final class NameServer: Sendable {
    /// Expiry settings, as given.
    public let configuration: NameServerConfiguration
    /// The registry every service of this NameServer reads and writes.
    public let routeTable: RouteTable
    private let logger: Logger

    public init(configuration: NameServerConfiguration = NameServerConfiguration(), logger: Logger = Logger(label: "rocketmq.namesrv")) {
        self.configuration = configuration
        self.routeTable = RouteTable(brokerExpiry: configuration.brokerExpiry)
        self.logger = logger
    }

    /// The gRPC services to serve: `rocketmq.namesrv.v1.NameServer` and the NameServer's part of
    /// `apache.rocketmq.v2.MessagingService`.
    public var services: [any RPCService] {
        [RegistryService(routeTable: routeTable, logger: logger), RouteQueryService(routeTable: routeTable, logger: logger)]
    }

    /// Sweeps out expired brokers every ``NameServerConfiguration/expiryCheckInterval`` until the task
    /// is cancelled.
    public func run() async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: configuration.expiryCheckInterval)
            } catch {
                return
            }
            for registration in routeTable.removeExpired() {
                logger.warning("broker expired: no heartbeat within the expiry", metadata: [
                    "cluster": "\(registration.clusterName)",
                    "broker": "\(registration.key)",
                    "expiry": "\(configuration.brokerExpiry)",
                ])
            }
        }
    }
}
