import ArgumentParser
import Foundation
import RocketMQClient

/// Sends `count` messages with body `<prefix>-<i>`, tag, keys and properties; prints their ids.
struct Produce: AsyncParsableCommand {
    @OptionGroup var connection: Connection
    @Option var count = 10
    @Option var prefix = "swift"
    @Option var tag = "interop"
    @Option(help: "Append this many 'x' to each body (over 4 KiB the body travels gzip-compressed).") var pad = 0

    func run() async throws {
        let producer = try await Producer.start(configuration: try connection.configuration(), topics: [connection.topic])
        for index in 0..<count {
            let message = Message(
                topic: connection.topic, body: Array("\(prefix)-\(index)".utf8) + Array(repeating: UInt8(ascii: "x"), count: pad), tag: tag,
                keys: ["key-\(index)"], properties: ["index": "\(index)", "origin": "swift"])
            let receipt = try await producer.send(message)
            print(#"{"sent":"\#(receipt.messageId)","index":\#(index)}"#)
        }
        await producer.shutdown()
    }
}
