import Foundation
import RocketMQClient
import Testing

/// How a client finds routes when its NameServers disagree or stop answering.
@Suite struct RouteDiscoveryTests {
    @Test func aTopicOnlyTheSecondNameServerKnowsIsFoundThere() async throws {
        let topic = unique("second-ns")
        // Two NameServers, which never talk to each other; the broker registers with the second
        // only (as after the first restarted and before the broker's next registration).
        let empty = try ServerProcess("mqnamesrv", ["--port", "0"])
        defer { empty.stop() }
        let knowing = try ServerProcess("mqnamesrv", ["--port", "0"])
        defer { knowing.stop() }
        let (broker, directory) = try brokerServing(topic, registeredWith: knowing)
        defer { broker.stop(); directory.remove() }
        let probe = try await Producer.start(configuration: ClientConfiguration(endpoints: knowing.endpoint))
        let routed = await eventually(timeout: .seconds(15)) { (try? await probe.route(of: topic, refresh: true)) != nil }
        await probe.shutdown()
        try #require(routed)

        let producer = try await Producer.start(configuration: ClientConfiguration(endpoints: "\(empty.endpoint);\(knowing.endpoint)"))
        let receipt = try await producer.send(Message(topic: topic, body: Array("found".utf8)))
        await producer.shutdown()
        #expect(receipt.brokerName == "broker-a")

        // Neither knows a topic: the answer is the NameServers' status, not a transport error.
        let lost = try await Producer.start(configuration: ClientConfiguration(endpoints: "\(empty.endpoint);\(knowing.endpoint)"))
        await #expect {
            _ = try await lost.send(Message(topic: unique("nowhere"), body: [1]))
        } throws: { error in
            guard case .status(let code, _) = error as? RocketMQError else { return false }
            return code == .topicNotFound
        }
        await lost.shutdown()
    }

    @Test func sendsKeepTheCachedRouteWithoutWaitingWhileTheNameServerHangs() async throws {
        let topic = unique("hung-ns")
        let nameServer = try ServerProcess("mqnamesrv", ["--port", "0"])
        defer { nameServer.stop() }
        let (broker, directory) = try brokerServing(topic, registeredWith: nameServer)
        defer { broker.stop(); directory.remove() }
        var configuration = try ClientConfiguration(endpoints: nameServer.endpoint, requestTimeout: .seconds(1))
        configuration.routeRefreshInterval = .milliseconds(300)
        let producer = try await Producer.start(configuration: configuration)
        let routed = await eventually(timeout: .seconds(15)) { (try? await producer.route(of: topic, refresh: true)) != nil }
        try #require(routed)
        _ = try await producer.send(Message(topic: topic, body: [0]))

        // Hung, not gone: a route query now waits out the request timeout (1 s).
        nameServer.pause()
        defer { nameServer.resume() }
        try await Task.sleep(for: .milliseconds(400))  // the cached route is due for a refresh
        let start = ContinuousClock.now
        for index in 1...6 {
            _ = try await producer.send(Message(topic: topic, body: [UInt8(index)]))
            try await Task.sleep(for: .milliseconds(350))  // past the refresh interval each time
        }
        let elapsed = ContinuousClock.now - start
        nameServer.resume()
        await producer.shutdown()
        // One failed refresh (1 s), then the cached route for a few seconds; before, every
        // send waited for its own failed query (6 × 1 s).
        #expect(elapsed < .milliseconds(4500), "6 sends took \(elapsed) while the NameServer hung")
    }
}

/// A broker "broker-a" with `topic` (2 queues), registered with `nameServer`, and its data folder.
private func brokerServing(_ topic: String, registeredWith nameServer: ServerProcess) throws -> (ServerProcess, TemporaryDirectory) {
    let directory = try TemporaryDirectory("route-discovery")
    let config = try directory.write("broker.json", """
        {"topics": [{"name": "\(topic)", "queueCount": 2, "permission": 6, "messageTypes": ["NORMAL"]}]}
        """)
    do {
        let broker = try ServerProcess("mqbroker", [
            "--data", directory.file("b"), "--port", "0", "-n", nameServer.endpoint, "--broker-name", "broker-a", "--config", config,
        ])
        return (broker, directory)
    } catch {
        directory.remove()
        throw error
    }
}
