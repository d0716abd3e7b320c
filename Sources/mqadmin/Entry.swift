import Foundation
/// `mqadmin` runs RocketMQ's verbs (`mqadmin topicList -n host:port`) when the first argument
/// names one, and the grpcurl-compatible generic mode (`mqadmin -plaintext HOST:PORT list`) otherwise.
@main
enum Entry {
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if let verb = arguments.first, RocketMQVerbs.names.contains(verb) {
            await RocketMQVerbs.main(arguments)
            // Some brokers failed (named on stderr) while others answered (printed).
            if BrokerFailures.any { exit(1) }
        } else {
            await MQAdmin.runGeneric()
        }
    }
}
