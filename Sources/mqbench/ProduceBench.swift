import ArgumentParser
import RocketMQAPI
import ServerAllocator

/// `mqbench produce`: sends messages (a --count, or for a --duration) with `concurrency`
/// senders and reports rate and latency.
struct ProduceBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "produce", abstract: "Send messages to a broker and measure throughput and latency.")

    @OptionGroup var options: ClusterOptions
    @Option(help: "sync (each sender awaits each send), async (--in-flight sends per sender) or oneway (senders do not wait for answers; at most 1,024 unanswered per sender).")
    var mode = "sync"
    @Option(help: "Sends in flight per sender in async mode.") var inFlight = 8

    func validate() throws {
        guard ["sync", "async", "oneway"].contains(mode) else { throw ValidationError("--mode must be sync, async or oneway, got \(mode)") }
        guard inFlight >= 1 else { throw ValidationError("--in-flight must be at least 1") }
    }

    func run() async throws {
        ServerAllocator.activate()
        let (mode, inFlight, json) = (self.mode, self.inFlight, options.json)
        let summary = try await options.withCluster { spec in
            try await spec.client.run { try await Self.produce(spec, mode: mode, inFlight: inFlight) }
        }
        try printSummary(summary, json: json)
    }

    private static func produce(_ spec: BenchSpec, mode: String, inFlight: Int) async throws -> [String: Any] {
        let (channels, queues) = try await spec.channelsAndQueues(spec.connections)
        let clients = channels.map { Apache_Rocketmq_V2_MessagingService.Client(channel: $0) }
        let recorder = Recorder(messageSize: spec.size)
        let progress = reportProgress(recorder, label: "produce")
        let body = [UInt8](repeating: 0x61, count: spec.size)
        let (fifoGroups, callOptions) = (spec.fifoGroups, spec.callOptions)
        let window = switch mode {
        case "sync": 1
        case "async": inFlight
        default: 1024
        }
        let deadline = spec.deadline()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for sender in 0..<spec.concurrency {
                let client = clients[sender % clients.count]
                let topic = spec.topic(of: sender)
                let topicQueues = queues[sender % queues.count]
                group.addTask {
                    try await withThrowingTaskGroup(of: Void.self) { pipeline in
                        var n = 0
                        while spec.sends(sender, after: n, until: deadline) {
                            let request = BenchMessage.request(
                                topic: topic, queues: topicQueues, body: body, sender: sender, sequence: n, fifoGroups: fifoGroups)
                            if mode == "sync" {
                                await recorder.timeSend(request, with: client, options: callOptions)  // the sender itself waits, as a synchronous producer does
                            } else {
                                if n >= window { try await pipeline.next() }
                                let oneway = mode == "oneway"
                                pipeline.addTask { await recorder.timeSend(request, with: client, options: callOptions, latency: !oneway) }
                                if oneway { recorder.record(micros: 0) }
                            }
                            n += 1
                        }
                        try await pipeline.waitForAll()
                    }
                }
            }
            try await group.waitForAll()
        }
        progress.cancel()
        for channel in channels { await channel.close() }
        return recorder.summary("produce-\(mode)", extra: [
            "concurrency": spec.concurrency, "connections": spec.connections, "topics": spec.topics.count,
            "queues": queues.map(\.count).reduce(0, +), "in_flight": window,
        ], stats: spec.stats)
    }
}
