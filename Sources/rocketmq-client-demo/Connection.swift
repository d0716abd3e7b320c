import ArgumentParser
import Foundation
import RocketMQClient

/// Options every subcommand shares.
struct Connection: ParsableArguments {
    @Option(help: "NameServer or broker, host:port[;host:port].") var endpoint: String
    @Option(help: "Topic.") var topic: String

    func configuration() throws -> ClientConfiguration {
        try ClientConfiguration(endpoints: endpoint, requestTimeout: .seconds(5))
    }
}
