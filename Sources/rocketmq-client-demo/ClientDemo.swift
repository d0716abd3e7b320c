import ArgumentParser
import Foundation
import RocketMQClient

/// Swift side of the cross-language tests: produces or consumes with RocketMQClient and prints
/// one JSON line per message, so a Python test can compare bodies, properties and keys.
@main
struct ClientDemo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rocketmq-client-demo",
        abstract: "Produce or consume with the Swift RocketMQ client.",
        subcommands: [Produce.self, Consume.self, Leak.self])
}

/// Options every subcommand shares.
struct Connection: ParsableArguments {
    @Option(help: "NameServer or broker, host:port[;host:port].") var endpoint: String
    @Option(help: "Topic.") var topic: String

    func configuration() throws -> ClientConfiguration {
        try ClientConfiguration(endpoints: endpoint, requestTimeout: .seconds(5))
    }
}

/// Sends `count` messages with body `<prefix>-<i>`, tag, keys and properties; prints their ids.
struct Produce: AsyncParsableCommand {
    @OptionGroup var connection: Connection
    @Option var count = 10
    @Option var prefix = "swift"
    @Option var tag = "interop"

    func run() async throws {
        let producer = try await Producer.start(configuration: try connection.configuration(), topics: [connection.topic])
        for index in 0..<count {
            let message = Message(
                topic: connection.topic, body: Array("\(prefix)-\(index)".utf8), tag: tag,
                keys: ["key-\(index)"], properties: ["index": "\(index)", "origin": "swift"])
            let receipt = try await producer.send(message)
            print(#"{"sent":"\#(receipt.messageId)","index":\#(index)}"#)
        }
        await producer.shutdown()
    }
}

/// Receives until `count` messages arrived (or the timeout), acks them, prints each as JSON.
struct Consume: AsyncParsableCommand {
    @OptionGroup var connection: Connection
    @Option var group: String
    @Option var count = 10
    @Option(help: "Seconds to wait for all messages.") var timeout = 30.0

    func run() async throws {
        let consumer = try await SimpleConsumer.start(
            configuration: try connection.configuration(), group: group, subscriptions: [connection.topic: .all],
            awaitDuration: .seconds(1))
        var received = 0
        let deadline = Date().addingTimeInterval(timeout)
        while received < count, Date() < deadline {
            for message in try await consumer.receive(maxMessages: 16, invisibleDuration: .seconds(20)) {
                let line: [String: Any] = [
                    "id": message.messageId, "body": String(decoding: message.body, as: UTF8.self),
                    "tag": message.tag ?? "", "keys": message.keys, "properties": message.properties,
                ]
                let data = try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
                try await consumer.ack(message)
                received += 1
            }
        }
        await consumer.shutdown()
        if received < count { throw ValidationError("received \(received) of \(count) messages") }
    }
}

/// Runs `cycles` send + receive + ack rounds and reports VmRSS (KiB) after warm-up and at the end.
struct Leak: AsyncParsableCommand {
    @OptionGroup var connection: Connection
    @Option var group: String
    @Option var cycles = 10_000
    @Option var warmup = 1_000

    func run() async throws {
        let configuration = try connection.configuration()
        let producer = try await Producer.start(configuration: configuration, topics: [connection.topic])
        let consumer = try await SimpleConsumer.start(
            configuration: configuration, group: group, subscriptions: [connection.topic: .all], awaitDuration: .seconds(1))
        var before = 0
        for cycle in 0..<(warmup + cycles) {
            if cycle == warmup { before = Self.residentKiB() }
            _ = try await producer.send(Message(topic: connection.topic, body: Array("leak-\(cycle)".utf8)))
            var got = 0
            while got == 0 {
                for message in try await consumer.receive(maxMessages: 1, invisibleDuration: .seconds(30)) {
                    try await consumer.ack(message)
                    got += 1
                }
            }
        }
        let after = Self.residentKiB()
        print(#"{"rss_before_kib":\#(before),"rss_after_kib":\#(after),"cycles":\#(cycles)}"#)
        await consumer.shutdown()
        await producer.shutdown()
    }

    static func residentKiB() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return -1 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1
        }
        return -1
    }
}
