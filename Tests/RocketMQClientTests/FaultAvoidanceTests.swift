import Foundation
import RocketMQClient
import Testing

@Suite struct FaultAvoidanceTests {
    @Test func sendsMoveToTheSurvivingBrokerWhenOneIsKilled() async throws {
        let directory = try TemporaryDirectory("cluster")
        defer { directory.remove() }
        let topic = unique("ha")
        let config = try directory.write("topics.json", """
            {"topics": [{"name": "\(topic)", "queueCount": 4, "permission": 6, "messageTypes": ["NORMAL"]}]}
            """)
        let nameServer = try ServerProcess("mqnamesrv", ["--port", "0"])
        defer { nameServer.stop() }
        let brokerA = try ServerProcess("mqbroker", [
            "--data", directory.file("a"), "--port", "0", "-n", nameServer.endpoint, "--broker-name", "broker-a", "--config", config,
        ])
        defer { brokerA.stop() }
        let brokerB = try ServerProcess("mqbroker", [
            "--data", directory.file("b"), "--port", "0", "-n", nameServer.endpoint, "--broker-name", "broker-b", "--config", config,
        ])
        defer { brokerB.stop() }
        let configuration = try ClientConfiguration(endpoints: nameServer.endpoint)

        // Both brokers registered: the route names both.
        let producer = try await Producer.start(configuration: configuration)
        let bothRouted = await eventually(timeout: .seconds(15)) {
            guard let route = try? await producer.route(of: topic, refresh: true) else { return false }
            return Set(route.queues.map { $0.broker?.name ?? "" }) == ["broker-a", "broker-b"]
        }
        try #require(bothRouted)
        var before: [String] = []
        for index in 0..<8 { before.append(try await producer.send(Message(topic: topic, body: Array("x\(index)".utf8))).brokerName) }
        #expect(Set(before) == ["broker-a", "broker-b"], "round-robin should use both brokers: \(before)")

        brokerB.kill()
        let start = ContinuousClock.now
        var after: [String] = []
        for index in 0..<30 {
            after.append(try await producer.send(Message(topic: topic, body: Array("y\(index)".utf8))).brokerName)
        }
        let elapsed = ContinuousClock.now - start
        await producer.shutdown()
        #expect(Set(after) == ["broker-a"], "sends went to \(Set(after))")
        #expect(elapsed < .seconds(10), "30 sends took \(elapsed) with one broker down")
    }
}
