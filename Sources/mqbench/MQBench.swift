import ArgumentParser

/// `mqbench`: benchmarks for rocketmq-swift. Only `store` exists so far.
@main
struct MQBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mqbench", abstract: "rocketmq-swift benchmarks.", subcommands: [StoreBench.self])
}
