import Foundation
import Logging
import RocketMQAPI
import RocketRPC

/// `rocketmq.namesrv.v1.NameServer`: brokers' registration streams and the operators' views, over a
/// ``RouteTable``.
///
/// A registration lives exactly as long as its stream: when the stream ends (the broker half-closes,
/// cancels, or its connection drops) the broker is unregistered before the handler returns.
public struct RegistryService: Rocketmq_Namesrv_V1_NameServer.ServiceProtocol {
    /// The registry this service reads and writes.
    public let routeTable: RouteTable
    private let logger: Logger

    public init(routeTable: RouteTable, logger: Logger = Logger(label: "rocketmq.namesrv.registry")) {
        self.routeTable = routeTable
        self.logger = logger
    }

    public func registerBroker(
        requests: RequestStream<Rocketmq_Namesrv_V1_RegisterBrokerRequest>,
        response: ResponseWriter<Rocketmq_Namesrv_V1_RegisterBrokerResponse>,
        context: ServerContext
    ) async throws {
        // A master replaced by one of a higher epoch is refused at once, not at its next heartbeat.
        let (superseded, supersede) = AsyncStream<NameServerError>.makeStream(bufferingPolicy: .bufferingNewest(1))
        defer { supersede.finish() }
        let (routeTable, logger, peer) = (self.routeTable, self.logger, context.peer)
        let expiry = routeTable.brokerExpiry.components
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    var session = RegistrationSession(routeTable: routeTable, peer: peer, logger: logger, onSuperseded: { supersede.yield($0) })
                    defer { session.end() }
                    for try await request in requests {
                        let registered = try session.handle(request)
                        try await response.write(Rocketmq_Namesrv_V1_RegisterBrokerResponse(
                            sequence: session.acknowledged,
                            brokerExpiry: Google_Protobuf_Duration(seconds: expiry.seconds, nanos: Int32(expiry.attoseconds / 1_000_000_000)),
                            registered: registered
                        ))
                    }
                }
                group.addTask {
                    for await refusal in superseded { throw refusal }
                }
                // The stream's end (or failure), or a supersession: either ends the other.
                try await group.next()
                group.cancelAll()
            }
        } catch let error as NameServerError {
            logger.warning("rejected a registration stream", metadata: ["peer": "\(context.peer)", "error": "\(error)"])
            throw error.rpcError
        }
    }

    public func getClusterInfo(request: Rocketmq_Namesrv_V1_GetClusterInfoRequest, context: ServerContext) async throws -> Rocketmq_Namesrv_V1_GetClusterInfoResponse {
        let brokers = routeTable.brokers()
        let clusters = Dictionary(grouping: brokers, by: \.registration.clusterName)
        return Rocketmq_Namesrv_V1_GetClusterInfoResponse(clusters: clusters.keys.sorted().map { name in
            Rocketmq_Namesrv_V1_ClusterInfo(name: name, brokers: (clusters[name] ?? []).map { broker in
                let registration = broker.registration
                return Rocketmq_Namesrv_V1_BrokerInfo(
                    brokerName: registration.brokerName,
                    brokerId: Int64(registration.brokerId),
                    role: registration.isMaster ? .master : .slave,
                    endpoints: registration.endpoints,
                    registeredAt: Self.timestamp(broker.registeredAt),
                    lastHeartbeat: Self.timestamp(broker.lastHeartbeat),
                    topicCount: Int32(clamping: registration.topics.count)
                )
            })
        })
    }

    public func getTopicRoute(request: Rocketmq_Namesrv_V1_GetTopicRouteRequest, context: ServerContext) async throws -> Rocketmq_Namesrv_V1_GetTopicRouteResponse {
        let brokers = routeTable.brokers(for: request.topic)
        guard !brokers.isEmpty else { throw NameServerError.topicNotFound(request.topic).rpcError }
        return Rocketmq_Namesrv_V1_GetTopicRouteResponse(topic: request.topic, brokers: brokers.map { broker in
            Rocketmq_Namesrv_V1_BrokerTopicRoute(
                clusterName: broker.clusterName,
                brokerName: broker.brokerName,
                brokerId: Int64(broker.brokerId),
                endpoints: broker.endpoints,
                route: broker.topic(named: request.topic)?.message
            )
        })
    }

    public func listTopics(request: Rocketmq_Namesrv_V1_ListTopicsRequest, context: ServerContext) async throws -> Rocketmq_Namesrv_V1_ListTopicsResponse {
        let cluster = request.clusterName.isEmpty ? nil : request.clusterName
        return Rocketmq_Namesrv_V1_ListTopicsResponse(topics: routeTable.topics(inCluster: cluster))
    }

    public func unregisterBroker(request: Rocketmq_Namesrv_V1_UnregisterBrokerRequest, context: ServerContext) async throws -> Rocketmq_Namesrv_V1_UnregisterBrokerResponse {
        let key = BrokerKey(brokerName: request.brokerName, brokerId: Int(clamping: request.brokerId))
        guard routeTable.unregister(key) != nil else { throw NameServerError.brokerNotFound(key).rpcError }
        logger.notice("broker unregistered by an operator", metadata: ["broker": "\(key)", "peer": "\(context.peer)"])
        return Rocketmq_Namesrv_V1_UnregisterBrokerResponse()
    }

    private static func timestamp(_ date: Date) -> Google_Protobuf_Timestamp {
        let seconds = date.timeIntervalSince1970.rounded(.down)
        return Google_Protobuf_Timestamp(seconds: Int64(seconds), nanos: Int32((date.timeIntervalSince1970 - seconds) * 1e9))
    }
}
