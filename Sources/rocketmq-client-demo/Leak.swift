import ArgumentParser
import Foundation
import RocketMQClient

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
