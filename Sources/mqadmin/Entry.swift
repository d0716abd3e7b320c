/// `mqadmin` runs RocketMQ's verbs (`mqadmin topicList -n host:port`) when the first argument
/// names one, and the grpcurl-compatible generic mode otherwise.
@main
enum Entry {
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        await RocketMQVerbs.main(arguments)
    }
}
