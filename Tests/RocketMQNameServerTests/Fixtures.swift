import RocketMQAPI
import RocketMQNameServer
import RocketRPC
import Synchronization
import Testing

/// A broker registration as tests use it.
func registration(
    broker: String = "broker-a",
    id: Int = 0,
    cluster: String = "DefaultCluster",
    endpoints: [String] = ["127.0.0.1:10911"],
    topics: [TopicRoute] = [TopicRoute(name: "orders", queueCount: 4)],
    masterEpoch: Int64 = 0
) -> BrokerRegistration {
    BrokerRegistration(clusterName: cluster, brokerName: broker, brokerId: id, endpoints: endpoints, topics: topics, masterEpoch: masterEpoch)
}

/// Polls `condition` every 50 ms until it holds or `timeout` runs out; returns its last value.
func eventually(within timeout: Duration = .seconds(5), _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(50))
    }
    return try await condition()
}

/// A registration a test can change while a registrar reads it.
final class RegistrationBox: Sendable {
    private let current: Mutex<BrokerRegistration>

    init(_ initial: BrokerRegistration) {
        current = Mutex(initial)
    }

    var value: BrokerRegistration {
        get { current.withLock { $0 } }
        set { current.withLock { $0 = newValue } }
    }
}

/// An in-process NameServer on an ephemeral loopback port.
struct RunningNameServer: Sendable {
    let nameServer: NameServer
    let server: RPCServer
    let sweep: Task<Void, Never>
    let port: Int

    var address: String { "127.0.0.1:\(port)" }

    /// Starts a NameServer; `port` 0 picks a free one.
    static func start(expiry: Duration = .seconds(120), port: Int = 0) async throws -> RunningNameServer {
        let nameServer = NameServer(configuration: NameServerConfiguration(brokerExpiry: expiry, expiryCheckInterval: .milliseconds(100)))
        let server = RPCServer(configuration: ServerConfiguration(port: port), services: nameServer.services)
        try await server.start()
        let sweep = Task { await nameServer.run() }
        return RunningNameServer(nameServer: nameServer, server: server, sweep: sweep, port: try #require(server.localPort))
    }

    func stop() async {
        sweep.cancel()
        await server.shutdown(gracePeriod: .milliseconds(200))
    }

    func channel() -> RPCChannel {
        RPCChannel(configuration: ChannelConfiguration(host: "127.0.0.1", port: port))
    }
}

/// Calls `QueryRoute` for `topic` as a client with `clientID` (no header when `nil`).
func queryRoute(_ channel: RPCChannel, topic: String, clientID: String? = "test-client") async throws -> Apache_Rocketmq_V2_QueryRouteResponse {
    var options = CallOptions()
    if let clientID { options.metadata.add("x-mq-client-id", clientID) }
    return try await Apache_Rocketmq_V2_MessagingService.Client(channel: channel)
        .queryRoute(Apache_Rocketmq_V2_QueryRouteRequest(topic: Apache_Rocketmq_V2_Resource(name: topic)), options: options)
}

/// The status code `QueryRoute` answers for `topic`.
func routeCode(_ channel: RPCChannel, topic: String) async throws -> Apache_Rocketmq_V2_Code? {
    try await queryRoute(channel, topic: topic).status?.code
}

/// Values collected from any thread, read by the test.
final class Collected<Value: Sendable>: Sendable {
    private let items = Mutex<[Value]>([])

    func append(_ value: Value) { items.withLock { $0.append(value) } }
    var values: [Value] { items.withLock { $0 } }
}
