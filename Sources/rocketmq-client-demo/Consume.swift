import ArgumentParser
import Foundation
import RocketMQClient

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
