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
