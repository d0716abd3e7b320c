import ArgumentParser

/// `mqbench`: benchmarks for rocketmq-swift — the store alone, and a running cluster
/// (produce, consume, produce→consume latency) with exactly-once and order checks.
@main
struct MQBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mqbench", abstract: "rocketmq-swift benchmarks.", subcommands: [StoreBench.self, ProduceBench.self, ConsumeBench.self, EndToEndBench.self])
}
