import ArgumentParser
import RocketMQAPI
import ServerAllocator

/// `mqbench e2e`: produces and consumes at once; latency is receive time minus the born time.
struct EndToEndBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "e2e", abstract: "Produce and consume at once; report produce→consume latency.")

    @OptionGroup var options: ClusterOptions
    @Option(help: "Messages per second to offer (0: as fast as possible), paced by the clock: a sender that falls behind catches up rather than lowering the rate.")
    var rate = 0
    @Option(help: "Concurrent senders (default: --concurrency, which is the number of receivers).") var senders: Int?
    @Option(help: "With --rate: the pacing clock's tick in milliseconds. A send due within a tick goes out at the tick's end, with every other send due in it, as a timer-driven producer's would; 0: each send at its own due time (one wake-up and one write each).")
    var tickMs = 1.0
    @Option(help: "Seconds of warm-up: messages born in the run's first seconds count in every figure but the steady_* ones (latency once a new topic's queues, the group's first receives and both processes have warmed up, as benchmarks of brokers usually report it).")
    var warmup = 0.0

    func validate() throws {
        guard rate >= 0 else { throw ValidationError("--rate must not be negative") }
        guard tickMs >= 0 else { throw ValidationError("--tick-ms must not be negative") }
        guard warmup >= 0 else { throw ValidationError("--warmup must not be negative") }
        guard options.concurrency >= options.topics else { throw ValidationError("--concurrency must be at least --topics: every topic needs a receiver") }
    }

    func run() async throws {
        ServerAllocator.activate()
        let json = options.json
        let (rate, senders, clientThreads) = (self.rate, self.senders, options.clientThreads)
        let tick = Duration.microseconds(Int64(tickMs * 1000))
        let warmup = self.warmup
        let summary = try await options.withCluster { options in
            // The warm-up counts from here.
            let steadyFrom = warmup > 0 ? BornClock.microseconds(warmup) : nil
            return try await Self.run(
                options, rate: rate, tick: tick, senders: max(1, senders ?? options.concurrency), clientThreads: clientThreads, steadyFrom: steadyFrom)
        }
        try printSummary(summary, json: json)
    }

    private static func run(
        _ options: BenchSpec, rate: Int, tick: Duration, senders: Int, clientThreads: Int, steadyFrom: UInt64?
    ) async throws -> [String: Any] {
        // The producing and the consuming side each run on an event loop of their own, tasks
        // included (with --client-threads 1, on one loop together): a call then costs no thread
        // hop, and the client's wake-ups do not compete with the broker for the cores.
        var sending = options
        var receiving = options
        if clientThreads > 1 {
            sending.client = ClientRuntime(threads: 1)
            receiving.client = ClientRuntime(threads: 1)
        }
        sending.concurrency = senders
        // The consumers wait for what the broker acknowledged: --count, or with --duration the
        // number known once the senders stop; the checker compares the two sets.
        let expected = ExpectedCount(options.duration == nil ? options.count : Int.max)
        let acknowledged = AcknowledgedSends()
        let consumer = receiving
        async let consumed = consumer.client.run {
            try await Consumption.run(consumer, idle: .seconds(5), latencyFromBorn: true, expected: expected, until: nil, acknowledged: acknowledged,
                                      steadyFromMicros: steadyFrom)
        }
        let producer = sending
        let sent: SendSummary
        do {
            sent = try await producer.client.run { try await send(producer, rate: rate, tick: tick, acknowledged: acknowledged) }
        } catch {
            expected.set(0)  // the consumers stop at once
            _ = try? await consumed
            throw error
        }
        expected.set(sent.acknowledged)
        var summary = try await consumed
        // What the consumers saw is the summary; the producer's side says which rate was really
        // offered and how much of the latency the send itself took.
        summary["send_rate"] = sent.rate
        summary["senders"] = senders
        summary["sent"] = sent.acknowledged
        summary["send_errors"] = sent.errors
        summary["send_p50_us"] = sent.p50
        summary["send_p99_us"] = sent.p99
        return summary
    }

    private struct SendSummary {
        var rate: Double
        var acknowledged: Int
        var errors: [String: Int]
        var p50: UInt64
        var p99: UInt64
    }

    /// Sends `count` messages (or until the `--duration` deadline) at `rate` with
    /// `options.concurrency` senders, released at the end of the `tick` their due time falls in;
    /// returns the rate achieved and the sends' summary.
    private static func send(_ options: BenchSpec, rate: Int, tick: Duration, acknowledged: AcknowledgedSends) async throws -> SendSummary {
        let (channels, queues) = try await options.channelsAndQueues(1)
        let channel = channels[0]
        let client = Apache_Rocketmq_V2_MessagingService.Client(channel: channel)
        let body = [UInt8](repeating: 0x61, count: options.size)
        let senders = options.concurrency
        // Message k (k = n × senders + sender) is due at start + k / rate: the offered rate holds
        // however long each send takes, as long as the senders together keep up.
        let spacing: Duration? = rate > 0 ? .nanoseconds(Int64(1_000_000_000 / Double(rate))) : nil
        let sends = Recorder(messageSize: options.size)
        let start = ContinuousClock.now
        let deadline = options.deadline()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for sender in 0..<senders {
                let topic = options.topic(of: sender)
                let topicQueues = queues[sender % queues.count]
                group.addTask {
                    var n = 0
                    while options.sends(sender, after: n, until: deadline) {
                        if let spacing { try await options.client.sleep(until: start + Self.release(of: spacing * (n * senders + sender), tick: tick)) }
                        if let deadline, ContinuousClock.now >= deadline { break }
                        let request = BenchMessage.request(
                            topic: topic, queues: topicQueues, body: body, sender: sender, sequence: n, fifoGroups: options.fifoGroups)
                        if await sends.timeSend(request, with: client, options: options.callOptions) {
                            acknowledged.add(sender: sender, sequence: n)
                        }
                        n += 1
                    }
                }
            }
            try await group.waitForAll()
        }
        let sendSeconds = (ContinuousClock.now - start) / .seconds(1)
        await channel.close()
        return SendSummary(
            rate: Double(sends.done) / sendSeconds, acknowledged: sends.done, errors: sends.errors,
            p50: sends.latency(percentile: 50), p99: sends.latency(percentile: 99))
    }

    /// When a send due `due` after the start goes out: at the end of its tick (sends due within
    /// one tick leave together, in one write per connection, as at a timer-driven producer; one
    /// wake-up and one write per message made a paced client cost ~25% more CPU per message).
    /// A zero tick: at its due time.
    static func release(of due: Duration, tick: Duration) -> Duration {
        guard tick > .zero else { return due }
        return tick * (due / tick).rounded(.up)
    }
}
