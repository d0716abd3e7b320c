import ArgumentParser

@main
struct MQBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mqbench", abstract: "rocketmq-swift benchmarks.", subcommands: [])
}
