import ArgumentParser
import Foundation
import RocketMQAPI
import RocketMQClient
import ServerAllocator

/// `mqbench produce`: sends messages (a --count, or for a --duration) with `concurrency`
/// senders and reports rate and latency.
struct ProduceBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "produce", abstract: "Send messages to a broker and measure throughput and latency.")

    @OptionGroup var options: ClusterOptions
    @Option(help: "sync (each sender awaits each send), async (--in-flight sends per sender) or oneway (senders do not wait for answers; at most 1,024 unanswered per sender).")
    var mode = "sync"
    @Option(help: "Sends in flight per sender in async mode.") var inFlight = 8
    @Option(help: """
        raw: the generated stubs, each request carrying only the headers the broker needs (the protocol's own cost). \
        producer: RocketMQClient's Producer, as an application sends (route cache, queue selection, retries, the full \
        RocketMQ headers; one connection per broker, on the client library's threads).
        """)
    var api = "raw"

    func validate() throws {
        guard ["sync", "async", "oneway"].contains(mode) else { throw ValidationError("--mode must be sync, async or oneway, got \(mode)") }
        guard inFlight >= 1 else { throw ValidationError("--in-flight must be at least 1") }
        guard ["raw", "producer"].contains(api) else { throw ValidationError("--api must be raw or producer, got \(api)") }
        if api == "producer", mode == "oneway" { throw ValidationError("--mode oneway is for --api raw (the Producer does not bound one-way sends)") }
        if api == "producer", options.dev { throw ValidationError("--api producer needs a broker at --endpoint (its routes name the broker's address)") }
    }

    func run() async throws {
        ServerAllocator.activate()
        let (mode, inFlight, json, api) = (self.mode, self.inFlight, options.json, self.api)
        let summary = try await options.withCluster { spec in
            if api == "producer" { return try await Self.produceWithProducer(spec, mode: mode, inFlight: inFlight) }
            return try await spec.client.run { try await Self.produce(spec, mode: mode, inFlight: inFlight) }
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

    /// The same senders through ``Producer/send(_:)-(Message)``: what an application's sends cost.
    private static func produceWithProducer(_ spec: BenchSpec, mode: String, inFlight: Int) async throws -> [String: Any] {
        // Topics prepared (and --queues applied) as for the raw senders, over a channel of its own.
        let (setup, _) = try await spec.channelsAndQueues(1)
        for channel in setup { await channel.close() }
        let producer = try await Producer.start(
            configuration: ClientConfiguration(endpoints: spec.endpoint, requestTimeout: .seconds(30)), topics: spec.topics)
        let recorder = Recorder(messageSize: spec.size)
        let progress = reportProgress(recorder, label: "produce")
        let body = [UInt8](repeating: 0x61, count: spec.size)
        let fifoGroups = spec.fifoGroups
        let window = mode == "sync" ? 1 : inFlight
        let deadline = spec.deadline()
        @Sendable func timeSend(_ message: Message) async {
            let begin = ContinuousClock.now
            do {
                _ = try await producer.send(message)
                recorder.record(micros: UInt64((ContinuousClock.now - begin).microseconds))
            } catch {
                if case .status(let code, _) = error { recorder.fail(code.protoName ?? "\(code.rawValue)") } else { recorder.fail("\(error)") }
            }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for sender in 0..<spec.concurrency {
                let topic = spec.topic(of: sender)
                group.addTask {
                    try await withThrowingTaskGroup(of: Void.self) { pipeline in
                        var n = 0
                        while spec.sends(sender, after: n, until: deadline) {
                            let message = Message(
                                topic: topic, body: body,
                                properties: ["bench-id": "\(sender)-\(n)", "bench-born-us": String(BornClock.microseconds())],
                                messageGroup: fifoGroups > 0 ? "g\(sender % fifoGroups)" : nil)
                            if window == 1 {
                                await timeSend(message)
                            } else {
                                if n >= window { try await pipeline.next() }
                                pipeline.addTask { await timeSend(message) }
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
        await producer.shutdown()
        return recorder.summary("produce-\(mode)-producer", extra: [
            "concurrency": spec.concurrency, "topics": spec.topics.count, "in_flight": window, "api": "producer",
        ], stats: spec.stats)
    }
}
