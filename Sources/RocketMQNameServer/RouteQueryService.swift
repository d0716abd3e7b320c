import Logging
import RocketMQAPI
import RocketRPC

/// The part of `apache.rocketmq.v2.MessagingService` a NameServer answers, for clients pointed at a
/// NameServer's port: `QueryRoute` from the ``RouteTable``, `Heartbeat` and `NotifyClientTermination`
/// (acknowledged), and `Telemetry` (each client `Settings` echoed back with status OK, the stream kept
/// open until the client closes it).
///
/// `RecallMessage`, which clients send to their access point, is forwarded to the master of the
/// broker its handle names. Every other unary method answers `NOT_IMPLEMENTED` inside its response
/// (the message tells the client to use a broker endpoint from `QueryRoute`); the streaming ones fail with gRPC
/// `UNIMPLEMENTED`. Every call must carry a non-blank `x-mq-client-id` header, else the response
/// status is `CLIENT_ID_REQUIRED`. An `authorization` header is accepted and ignored.
public struct RouteQueryService: Apache_Rocketmq_V2_MessagingService.ServiceProtocol {
    /// The metadata header RocketMQ 5 clients identify themselves with.
    public static let clientIDHeader = "x-mq-client-id"

    /// The registry routes are built from.
    public let routeTable: RouteTable
    private let logger: Logger

    public init(routeTable: RouteTable, logger: Logger = Logger(label: "rocketmq.namesrv.route")) {
        self.routeTable = routeTable
        self.logger = logger
    }

    // MARK: Answered

    public func queryRoute(request: Apache_Rocketmq_V2_QueryRouteRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_QueryRouteResponse {
        if let missing = Self.clientIDMissing(context) { return Apache_Rocketmq_V2_QueryRouteResponse(status: missing) }
        let topic = request.topic ?? Apache_Rocketmq_V2_Resource()
        if let problem = TopicRoute.nameProblem(topic.name) {
            return Apache_Rocketmq_V2_QueryRouteResponse(status: Apache_Rocketmq_V2_Status(code: .illegalTopic, message: problem))
        }
        do throws(NameServerError) {
            let queues = try routeTable.messageQueues(for: topic.name, namespace: topic.resourceNamespace)
            return Apache_Rocketmq_V2_QueryRouteResponse(status: Self.ok, messageQueues: queues)
        } catch {
            logger.debug("route query failed", metadata: ["topic": "\(topic.name)", "error": "\(error)", "peer": "\(context.peer)"])
            return Apache_Rocketmq_V2_QueryRouteResponse(status: error.status)
        }
    }

    public func heartbeat(request: Apache_Rocketmq_V2_HeartbeatRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_HeartbeatResponse {
        Apache_Rocketmq_V2_HeartbeatResponse(status: Self.clientIDMissing(context) ?? Self.ok)
    }

    public func notifyClientTermination(request: Apache_Rocketmq_V2_NotifyClientTerminationRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_NotifyClientTerminationResponse {
        Apache_Rocketmq_V2_NotifyClientTerminationResponse(status: Self.clientIDMissing(context) ?? Self.ok)
    }

    public func telemetry(
        requests: RequestStream<Apache_Rocketmq_V2_TelemetryCommand>,
        response: ResponseWriter<Apache_Rocketmq_V2_TelemetryCommand>,
        context: ServerContext
    ) async throws {
        if let missing = Self.clientIDMissing(context) {
            try await response.write(Apache_Rocketmq_V2_TelemetryCommand(status: missing))
            return
        }
        for try await command in requests {
            // Only Settings asks for an answer; results of server-initiated commands never arrive here.
            guard case .settings(let settings)? = command.command else { continue }
            try await response.write(Apache_Rocketmq_V2_TelemetryCommand(status: Self.ok, command: .settings(settings)))
        }
    }

    // MARK: Broker-only (unary: NOT_IMPLEMENTED in the response)

    public func sendMessage(request: Apache_Rocketmq_V2_SendMessageRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_SendMessageResponse {
        Apache_Rocketmq_V2_SendMessageResponse(status: Self.brokerOnly("SendMessage", context))
    }

    public func queryAssignment(request: Apache_Rocketmq_V2_QueryAssignmentRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_QueryAssignmentResponse {
        Apache_Rocketmq_V2_QueryAssignmentResponse(status: Self.brokerOnly("QueryAssignment", context))
    }

    public func ackMessage(request: Apache_Rocketmq_V2_AckMessageRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_AckMessageResponse {
        Apache_Rocketmq_V2_AckMessageResponse(status: Self.brokerOnly("AckMessage", context))
    }

    public func forwardMessageToDeadLetterQueue(
        request: Apache_Rocketmq_V2_ForwardMessageToDeadLetterQueueRequest, context: ServerContext
    ) async throws -> Apache_Rocketmq_V2_ForwardMessageToDeadLetterQueueResponse {
        Apache_Rocketmq_V2_ForwardMessageToDeadLetterQueueResponse(status: Self.brokerOnly("ForwardMessageToDeadLetterQueue", context))
    }

    public func updateOffset(request: Apache_Rocketmq_V2_UpdateOffsetRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_UpdateOffsetResponse {
        Apache_Rocketmq_V2_UpdateOffsetResponse(status: Self.brokerOnly("UpdateOffset", context))
    }

    public func getOffset(request: Apache_Rocketmq_V2_GetOffsetRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_GetOffsetResponse {
        Apache_Rocketmq_V2_GetOffsetResponse(status: Self.brokerOnly("GetOffset", context))
    }

    public func queryOffset(request: Apache_Rocketmq_V2_QueryOffsetRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_QueryOffsetResponse {
        Apache_Rocketmq_V2_QueryOffsetResponse(status: Self.brokerOnly("QueryOffset", context))
    }

    public func endTransaction(request: Apache_Rocketmq_V2_EndTransactionRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_EndTransactionResponse {
        Apache_Rocketmq_V2_EndTransactionResponse(status: Self.brokerOnly("EndTransaction", context))
    }

    public func changeInvisibleDuration(
        request: Apache_Rocketmq_V2_ChangeInvisibleDurationRequest, context: ServerContext
    ) async throws -> Apache_Rocketmq_V2_ChangeInvisibleDurationResponse {
        Apache_Rocketmq_V2_ChangeInvisibleDurationResponse(status: Self.brokerOnly("ChangeInvisibleDuration", context))
    }

    /// Forwarded to the master of the broker the recall handle names: clients send `RecallMessage`
    /// to their access point, not to the broker that stored the message (the broker's answer is
    /// returned as it is).
    public func recallMessage(request: Apache_Rocketmq_V2_RecallMessageRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_RecallMessageResponse {
        if let missing = Self.clientIDMissing(context) { return .init(status: missing) }
        guard let brokerName = RecallHandle(parsing: request.recallHandle)?.brokerName else {
            return .init(status: .init(code: .badRequest, message: RecallHandle.invalid(request.recallHandle)))
        }
        guard let master = routeTable.brokers().first(where: { $0.registration.brokerName == brokerName && $0.registration.isMaster }),
              let address = master.registration.endpoints.first, let endpoint = BrokerEndpoint(parsing: address)
        else {
            return .init(status: .init(code: .preconditionFailed, message: "broker \(brokerName) has no live master registered with this NameServer: retry once it is back"))
        }
        var metadata = Metadata()
        for name in [
            "x-mq-client-id", "authorization", "x-mq-date-time", "x-mq-request-id", "x-mq-language", "x-mq-client-version",
            "x-mq-protocol", "x-mq-namespace",
        ] {
            if let value = context.requestMetadata.first(name) { metadata.add(name, value) }
        }
        // The broker's answer, or ours on failure, must reach the client before its deadline.
        let remaining = context.deadline.map { $0 - .now - .milliseconds(200) } ?? .seconds(3)
        let channel = RPCChannel(configuration: ChannelConfiguration(host: endpoint.host, port: endpoint.port, connectTimeout: .seconds(2)), logger: logger)
        let answer: Apache_Rocketmq_V2_RecallMessageResponse
        do {
            answer = try await Apache_Rocketmq_V2_MessagingService.Client(channel: channel)
                .recallMessage(request, options: CallOptions(timeout: max(.milliseconds(100), remaining), metadata: metadata))
        } catch {
            logger.info("recall not forwarded", metadata: ["broker": "\(brokerName)", "address": "\(address)", "error": "\(error)"])
            answer = .init(status: .init(code: .proxyTimeout, message: "could not forward the recall to broker \(brokerName) at \(address): \(error)"))
        }
        await channel.close()
        return answer
    }

    public func syncLiteSubscription(
        request: Apache_Rocketmq_V2_SyncLiteSubscriptionRequest, context: ServerContext
    ) async throws -> Apache_Rocketmq_V2_SyncLiteSubscriptionResponse {
        Apache_Rocketmq_V2_SyncLiteSubscriptionResponse(status: Self.brokerOnly("SyncLiteSubscription", context))
    }

    // MARK: Broker-only (streaming: gRPC UNIMPLEMENTED)

    public func receiveMessage(
        request: Apache_Rocketmq_V2_ReceiveMessageRequest,
        response: ResponseWriter<Apache_Rocketmq_V2_ReceiveMessageResponse>,
        context: ServerContext
    ) async throws {
        throw RPCError(code: .unimplemented, message: Self.brokerOnlyMessage("ReceiveMessage"))
    }

    public func pullMessage(
        request: Apache_Rocketmq_V2_PullMessageRequest,
        response: ResponseWriter<Apache_Rocketmq_V2_PullMessageResponse>,
        context: ServerContext
    ) async throws {
        throw RPCError(code: .unimplemented, message: Self.brokerOnlyMessage("PullMessage"))
    }

    // MARK: Statuses

    private static let ok = Apache_Rocketmq_V2_Status(code: .ok, message: "OK")

    /// `CLIENT_ID_REQUIRED` when the call has no usable `x-mq-client-id`, else `nil`.
    private static func clientIDMissing(_ context: ServerContext) -> Apache_Rocketmq_V2_Status? {
        let clientID = context.requestMetadata.first(clientIDHeader) ?? ""
        guard clientID.allSatisfy(\.isWhitespace) else { return nil }
        return Apache_Rocketmq_V2_Status(code: .clientIdRequired, message: "the \(clientIDHeader) header is missing or blank")
    }

    private static func brokerOnly(_ method: String, _ context: ServerContext) -> Apache_Rocketmq_V2_Status {
        clientIDMissing(context) ?? Apache_Rocketmq_V2_Status(code: .notImplemented, message: brokerOnlyMessage(method))
    }

    private static func brokerOnlyMessage(_ method: String) -> String {
        "this is a NameServer: it answers QueryRoute only; send \(method) to a broker endpoint from QueryRoute"
    }
}
