import Foundation
@testable import RocketMQBroker
@testable import RocketMQClient
import Testing

@Suite struct ClientRegistrationTests {
    @Test func heartbeatsKeepTheClientKnownAndShutdownUnregistersIt() async throws {
        let inProcess = try await InProcessBroker.start()
        var configuration = try ClientConfiguration(endpoints: inProcess.endpoint)
        configuration.heartbeatInterval = .milliseconds(200)
        let group = unique("g")
        let consumer = try await PushConsumer.start(
            configuration: configuration, group: group, subscriptions: [unique("t"): .all]
        ) { _ in .success }
        let clientId = consumer.session.clientId
        func registered() -> ClientRegistry.Client? { inProcess.broker.clients.all.first { $0.clientId == clientId } }

        let first = try #require(registered())
        #expect(first.type == .pushConsumer)
        #expect(first.group == group)
        #expect(first.language == "SWIFT")
        #expect(first.settings != nil, "the Telemetry settings never reached the broker")
        let heartbeating = await eventually(timeout: .seconds(3)) {
            (registered()?.lastSeen ?? .distantPast) > first.lastSeen.addingTimeInterval(0.3)
        }
        #expect(heartbeating, "no heartbeat after the first")

        await consumer.shutdown()
        #expect(registered() == nil, "NotifyClientTermination did not remove the client")
        await inProcess.stop()
    }

    @Test func aHalfMessageBeforeTheProducersTelemetryStillGetsItCheckedBack() {
        // A producer that lists no topics opens Telemetry with its first route, so its first half
        // message can reach the broker before the broker has heard of it at all.
        let registry = ClientRegistry()
        registry.notePublishedTransaction(clientId: "early", topic: "orders")
        let (_, outbound) = AsyncStream<Apache_Rocketmq_V2_TelemetryCommand>.makeStream()
        _ = registry.openTelemetry(clientId: "early", outbound: outbound)
        var settings = Apache_Rocketmq_V2_Settings()
        settings.pubSub = .publishing(Apache_Rocketmq_V2_Publishing())
        registry.updateSettings(clientId: "early", settings: settings, group: nil)
        #expect(registry.producersByTopic(within: .seconds(30))["orders"]?.count == 1)
    }
}
