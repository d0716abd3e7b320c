import Foundation
import RocketMQClient
import Synchronization
import Testing

/// Runs `body` against a fresh `--dev` broker (its own data directory), stopped afterwards.
func withDevBroker<R>(config: String? = nil, console: Bool = false, _ body: (ServerProcess, ClientConfiguration) async throws -> R) async throws -> R {
    let directory = try TemporaryDirectory("broker")
    defer { directory.remove() }
    let configFile = try config.map { try directory.write("broker.json", $0) }
    let broker = try ServerProcess.devBroker(data: directory.file("data"), config: configFile, console: console)
    defer { broker.stop() }
    return try await body(broker, try ClientConfiguration(endpoints: broker.endpoint))
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes; returns whether it held.
func eventually(timeout: Duration = .seconds(15), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}

/// Receives with `consumer` until `count` messages arrived or `timeout` passed, acking each.
func receiveAll(_ consumer: SimpleConsumer, count: Int, timeout: Duration = .seconds(15), ack: Bool = true) async throws -> [ReceivedMessage] {
    var received: [ReceivedMessage] = []
    let deadline = ContinuousClock.now + timeout
    while received.count < count, ContinuousClock.now < deadline {
        for message in try await consumer.receive(maxMessages: 32, invisibleDuration: .seconds(30)) {
            if ack { try await consumer.ack(message) }
            received.append(message)
        }
    }
    return received
}

/// A unique name per test run, so tests on one broker never share topics or groups.
func unique(_ prefix: String) -> String { "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())" }

extension ReceivedMessage {
    var text: String { String(decoding: body, as: UTF8.self) }
}
