import Foundation
import RocketMQAPI
@testable import RocketMQClient
import RocketRPC
import ServiceLifecycle
import Synchronization
import Testing

/// A server that routes everything to itself and, on each Telemetry stream, sends a thread-stack
/// request and a verify-message command after the settings, collecting what the client answers.
final class CommandingServer: Apache_Rocketmq_V2_MessagingService.ServiceProtocol {
    let replies = Mutex<[Apache_Rocketmq_V2_TelemetryCommand]>([])
    let port = Mutex(0)

    private func notHere() -> RPCError { RPCError(code: .unimplemented, message: "not in this test server") }

    func queryRoute(request: Apache_Rocketmq_V2_QueryRouteRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_QueryRouteResponse {
        let endpoints = Apache_Rocketmq_V2_Endpoints(scheme: .ipv4, addresses: [.init(host: "127.0.0.1", port: Int32(port.withLock { $0 }))])
        let queue = Apache_Rocketmq_V2_MessageQueue(
            topic: request.topic, id: 0, permission: .readWrite, broker: .init(name: "commanding", id: 0, endpoints: endpoints),
            acceptMessageTypes: [.normal])
        return .init(status: .init(code: .ok, message: "OK"), messageQueues: [queue])
    }

    func heartbeat(request: Apache_Rocketmq_V2_HeartbeatRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_HeartbeatResponse {
        .init(status: .init(code: .ok, message: "OK"))
    }

    func notifyClientTermination(request: Apache_Rocketmq_V2_NotifyClientTerminationRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_NotifyClientTerminationResponse {
        .init(status: .init(code: .ok, message: "OK"))
    }

    func telemetry(
        requests: RequestStream<Apache_Rocketmq_V2_TelemetryCommand>,
        response: ResponseWriter<Apache_Rocketmq_V2_TelemetryCommand>,
        context: ServerContext
    ) async throws {
        var sentCommands = false
        for try await command in requests {
            if case .settings(let settings)? = command.command {
                try await response.write(.init(status: .init(code: .ok, message: "OK"), command: .settings(settings)))
                guard !sentCommands else { continue }
                sentCommands = true
                try await response.write(.init(command: .printThreadStackTraceCommand(.init(nonce: "stack-1"))))
                let message = Apache_Rocketmq_V2_Message(
                    topic: .init(name: "verify-me"),
                    systemProperties: .init(messageId: "m-1", bodyEncoding: .identity, messageType: .normal),
                    body: Array("check".utf8))
                try await response.write(.init(command: .verifyMessageCommand(.init(nonce: "verify-1", message: message))))
            } else {
                replies.withLock { $0.append(command) }
            }
        }
    }

    func receiveMessage(request: Apache_Rocketmq_V2_ReceiveMessageRequest, response: ResponseWriter<Apache_Rocketmq_V2_ReceiveMessageResponse>, context: ServerContext) async throws {
        try await response.write(.init(content: .status(.init(code: .messageNotFound, message: "none"))))
    }
    func sendMessage(request: Apache_Rocketmq_V2_SendMessageRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_SendMessageResponse { throw notHere() }
    func queryAssignment(request: Apache_Rocketmq_V2_QueryAssignmentRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_QueryAssignmentResponse {
        let route = try await queryRoute(request: .init(topic: request.topic), context: context)
        return .init(status: .init(code: .ok, message: "OK"), assignments: route.messageQueues.map { .init(messageQueue: $0) })
    }
    func ackMessage(request: Apache_Rocketmq_V2_AckMessageRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_AckMessageResponse { throw notHere() }
    func forwardMessageToDeadLetterQueue(request: Apache_Rocketmq_V2_ForwardMessageToDeadLetterQueueRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_ForwardMessageToDeadLetterQueueResponse { throw notHere() }
    func pullMessage(request: Apache_Rocketmq_V2_PullMessageRequest, response: ResponseWriter<Apache_Rocketmq_V2_PullMessageResponse>, context: ServerContext) async throws { throw notHere() }
    func updateOffset(request: Apache_Rocketmq_V2_UpdateOffsetRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_UpdateOffsetResponse { throw notHere() }
    func getOffset(request: Apache_Rocketmq_V2_GetOffsetRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_GetOffsetResponse { throw notHere() }
    func queryOffset(request: Apache_Rocketmq_V2_QueryOffsetRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_QueryOffsetResponse { throw notHere() }
    func endTransaction(request: Apache_Rocketmq_V2_EndTransactionRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_EndTransactionResponse { throw notHere() }
    func changeInvisibleDuration(request: Apache_Rocketmq_V2_ChangeInvisibleDurationRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_ChangeInvisibleDurationResponse { throw notHere() }
    func recallMessage(request: Apache_Rocketmq_V2_RecallMessageRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_RecallMessageResponse { throw notHere() }
    func syncLiteSubscription(request: Apache_Rocketmq_V2_SyncLiteSubscriptionRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_SyncLiteSubscriptionResponse { throw notHere() }
}

@Suite struct ServerCommandAndLifecycleTests {
    @Test func telemetryCommandsFromTheServerAreAnswered() async throws {
        let fake = CommandingServer()
        let server = RPCServer(configuration: ServerConfiguration(port: 0), services: [fake])
        try await server.start()
        let port = try #require(server.localPort)
        fake.port.withLock { $0 = port }
        let verified = Mutex<[String]>([])
        let consumer = try await PushConsumer.start(
            configuration: try ClientConfiguration(endpoints: "127.0.0.1:\(port)"), group: "g", subscriptions: ["verify-me": .all]
        ) { message in
            verified.withLock { $0.append(String(decoding: message.body, as: UTF8.self)) }
            return .success
        }
        let answered = await eventually(timeout: .seconds(10)) { fake.replies.withLock { $0.count } >= 2 }
        await consumer.shutdown()
        await server.shutdown(gracePeriod: .seconds(1))
        #expect(answered)
        let replies = fake.replies.withLock { $0 }
        let stack = replies.compactMap { reply -> Apache_Rocketmq_V2_ThreadStackTrace? in
            if case .threadStackTrace(let trace)? = reply.command { return trace }
            return nil
        }
        #expect(stack.first?.nonce == "stack-1")
        #expect(stack.first?.threadStackTrace?.contains("rocketmq-swift client") == true)
        let verification = replies.first { if case .verifyMessageResult? = $0.command { return true } else { return false } }
        #expect(verification?.status?.code == .ok)
        #expect(verified.withLock { $0 } == ["check"], "the push consumer's handler verified the message")
    }

    @Test func clientsRunAsServiceLifecycleServicesAndDrainOnGracefulShutdown() async throws {
        try await withDevBroker { _, configuration in
            let topic = unique("lifecycle")
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            let consumer = try await SimpleConsumer.start(configuration: configuration, group: unique("g"), subscriptions: [topic: .all])
            let group = ServiceGroup(services: [producer, consumer], logger: .init(label: "test"))
            let running = Task { try await group.run() }
            _ = try await producer.send(Message(topic: topic, body: Array("before".utf8)))
            await group.triggerGracefulShutdown()
            try await running.value
            // After the group shut down, the clients refuse work.
            await #expect(throws: RocketMQError.shutDown) { try await producer.send(Message(topic: topic, body: [1])) }
            await #expect(throws: RocketMQError.shutDown) { try await consumer.receive(maxMessages: 1, invisibleDuration: .seconds(30)) }
        }
    }
}
