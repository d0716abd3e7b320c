import ArgumentParser
import Foundation
import Histogram
import NIOCore
import NIOPosix
import RocketMQAPI
import RocketMQClient
import RocketRPC
import ServerAllocator
import Synchronization

/// Options shared by `mqbench produce|consume|e2e`: where the broker is and what to send.
struct ClusterOptions: ParsableArguments {
    @Option(help: "Broker endpoint host:port.") var endpoint = "127.0.0.1:8081"
    @Option(help: "Topic (created on first use by a --dev broker).") var topic = "mqbench"
    @Option(help: "Consumer group.") var group = "mqbench-group"
    @Option(help: "Message body size in bytes.") var size = 1024
    @Option(help: "Messages to send (or to expect, when consuming).") var count = 100_000
    @Option(help: "Concurrent senders / receivers.") var concurrency = 32
    @Option(help: "Message groups for FIFO sends (0: normal messages).") var fifoGroups = 0
    @Option(help: "pid of the broker, to report its CPU time and RSS.") var brokerPid: Int32?
    @Option(help: "Connections the senders share (produce); concurrency is connections × senders per connection.")
    var connections = 1
    @Option(help: "Client event-loop threads (default: one per core). With 1, every sender runs on the connection's event loop: no thread hops, but client and broker then take turns rather than overlap.")
    var clientThreads = System.coreCount
    @Flag(help: "Print the summary as one JSON line.") var json = false

    /// The options as a Sendable value for concurrent tasks.
    var spec: BenchSpec {
        BenchSpec(endpoint: endpoint, topic: topic, group: group, size: size, count: count,
                  concurrency: concurrency, fifoGroups: fifoGroups, brokerPid: brokerPid, callOptions: callOptions,
                  client: ClientRuntime(threads: clientThreads), connections: max(1, connections))
    }
}

/// What the benchmark tasks need of the options.
struct BenchSpec: Sendable {
    var endpoint: String
    var topic: String
    var group: String
    var size: Int
    var count: Int
    var concurrency: Int
    var fifoGroups: Int
    var brokerPid: Int32?
    var callOptions: CallOptions
    var client: ClientRuntime
    var connections: Int

    /// How many of `count` messages sender `index` sends, so that the total is exactly `count`.
    func share(of index: Int) -> Int {
        count / concurrency + (index < count % concurrency ? 1 : 0)
    }

    func channel() throws -> RPCChannel {
        let parts = endpoint.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]) else { throw ValidationError("--endpoint must be host:port") }
        return RPCChannel(configuration: ChannelConfiguration(host: String(parts[0]), port: port), eventLoopGroup: client.group)
    }
}

/// Where the benchmark's client side runs: its own event-loop group; with one thread, the
/// benchmark's tasks prefer that loop, so a call's hops between task and connection are enqueues
/// on one thread rather than cross-thread wake-ups.
struct ClientRuntime: Sendable {
    let group: MultiThreadedEventLoopGroup
    let executor: EventLoopTaskExecutor?

    init(threads: Int) {
        group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads))
        executor = threads <= 1 ? EventLoopTaskExecutor(eventLoop: group.next()) : nil
    }

    /// Runs `body` (and the child tasks it starts) on the client's loop when it has one thread.
    func run<T>(_ body: () async throws -> T) async throws -> T {
        guard let executor else { return try await body() }
        return try await withTaskExecutorPreference(executor, operation: body)
    }

    /// Sleeps until `deadline`. With one thread this is a timer of the client's own event loop:
    /// no timer thread wakes up, and the task resumes where it runs anyway.
    func sleep(until deadline: ContinuousClock.Instant) async throws {
        let delay = deadline - .now
        guard delay > .zero else { return }
        guard let executor else { return try await Task.sleep(until: deadline, clock: .continuous) }
        let (seconds, attoseconds) = delay.components
        let timeout = TimeAmount.nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            executor.eventLoop.scheduleTask(in: timeout) { continuation.resume() }
        }
    }
}

extension ClusterOptions {
    var callOptions: CallOptions {
        var options = CallOptions(timeout: .seconds(30))
        options.metadata.add("x-mq-client-id", "mqbench-\(ProcessInfo.processInfo.processIdentifier)")
        options.metadata.add("x-mq-language", "SWIFT")
        options.metadata.add("x-mq-protocol", "GRPC_V2")
        return options
    }
}

/// Latencies (µs) and error counts shared by concurrent tasks, plus a once-a-second progress line.
final class Recorder: Sendable {
    private struct State {
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        var done = 0
        var errors: [String: Int] = [:]
    }

    private let state = Mutex(State())
    let started = ContinuousClock.now

    func record(micros: UInt64) {
        state.withLock {
            _ = $0.histogram.record(min(micros, 60_000_000))
            $0.done += 1
        }
    }

    func fail(_ reason: String) {
        state.withLock { $0.errors[reason, default: 0] += 1 }
    }

    /// Sends `request` and records its latency, or its status or error as a failure.
    func timeSend(
        _ request: Apache_Rocketmq_V2_SendMessageRequest, with client: Apache_Rocketmq_V2_MessagingService.Client, options: CallOptions
    ) async {
        let begin = ContinuousClock.now
        do {
            let response = try await client.sendMessage(request, options: options)
            if response.status?.code == .ok {
                record(micros: UInt64((ContinuousClock.now - begin).microseconds))
            } else {
                fail(response.status?.code.protoName ?? "NO_STATUS")
            }
        } catch {
            fail("\(error)")
        }
    }

    var done: Int { state.withLock { $0.done } }
    var errors: [String: Int] { state.withLock { $0.errors } }
    func latency(percentile: Double) -> UInt64 { state.withLock { $0.histogram.valueAtPercentile(percentile) } }

    func progressLine(_ label: String) -> String {
        state.withLock { s in
            let seconds = Double((ContinuousClock.now - started).components.seconds) + 1e-9
            return "\(label): \(s.done) done, \(Int(Double(s.done) / max(seconds, 1))) /s, p50 \(s.histogram.valueAtPercentile(50)) µs, p99 \(s.histogram.valueAtPercentile(99)) µs, errors \(s.errors.values.reduce(0, +))"
        }
    }

    func summary(_ label: String, extra: [String: Any] = [:], brokerPid: Int32?) -> [String: Any] {
        let (done, p50, p99, p999, maximum, errors) = state.withLock { s in
            (s.done, s.histogram.valueAtPercentile(50), s.histogram.valueAtPercentile(99),
             s.histogram.valueAtPercentile(99.9), s.histogram.max, s.errors)
        }
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        var result: [String: Any] = [
            "scenario": label, "count": done, "seconds": seconds, "rate": Double(done) / seconds,
            "p50_us": p50, "p99_us": p99, "p999_us": p999, "max_us": maximum, "errors": errors,
        ]
        if let pid = brokerPid { result.merge(ProcessStats.of(pid)) { $1 } }
        result.merge(extra) { $1 }
        return result
    }
}

/// CPU seconds and RSS of a process, from /proc.
enum ProcessStats {
    static func of(_ pid: Int32) -> [String: Any] {
        var result: [String: Any] = [:]
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) {
            let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
            if fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) {
                result["broker_cpu_seconds"] = (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
            }
        }
        if let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) {
            for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") || line.hasPrefix("VmHWM:") {
                let kib = Double(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
                result[line.hasPrefix("VmRSS:") ? "broker_rss_mib" : "broker_peak_rss_mib"] = kib / 1024
            }
        }
        return result
    }
}

/// Prints the progress line every second until cancelled.
func reportProgress(_ recorder: Recorder, label: String) -> Task<Void, Never> {
    Task {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            if !Task.isCancelled { FileHandle.standardError.write(Data((recorder.progressLine(label) + "\n").utf8)) }
        }
    }
}

func printSummary(_ summary: [String: Any], json: Bool) throws {
    if json {
        let data = try JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys])
        FileHandle.standardOutput.write(data + Data("\n".utf8))
    } else {
        for key in summary.keys.sorted() { print("\(key): \(summary[key] ?? "")") }
    }
}

/// `mqbench produce`: sends `count` messages with `concurrency` senders and reports rate and latency.
struct ProduceBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "produce", abstract: "Send messages to a broker and measure throughput and latency.")

    @OptionGroup var options: ClusterOptions
    @Option(help: "sync (await each send), async (8 sends in flight per sender) or oneway (do not wait for answers).")
    var mode = "sync"

    func run() async throws {
        ServerAllocator.activate()
        let spec = options.spec
        try await spec.client.run { try await produce(spec) }
    }

    private func produce(_ spec: BenchSpec) async throws {
        let channels = try (0..<spec.connections).map { _ in try spec.channel() }
        let clients = channels.map { Apache_Rocketmq_V2_MessagingService.Client(channel: $0) }
        let recorder = Recorder()
        let progress = reportProgress(recorder, label: "produce")
        let body = [UInt8](repeating: 0x61, count: options.size)
        let (topic, fifoGroups, callOptions, mode) = (spec.topic, spec.fifoGroups, spec.callOptions, self.mode)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for sender in 0..<spec.concurrency {
                let client = clients[sender % clients.count]
                group.addTask {
                    let inFlight = mode == "async" ? 8 : 1
                    try await withThrowingTaskGroup(of: Void.self) { pipeline in
                        for n in 0..<spec.share(of: sender) {
                            if n >= inFlight { try await pipeline.next() }
                            let request = BenchMessage.request(topic: topic, body: body, sender: sender, sequence: n, fifoGroups: fifoGroups)
                            let send: @Sendable () async -> Void = {
                                await recorder.timeSend(request, with: client, options: callOptions)
                            }
                            switch mode {
                            case "oneway":
                                Task { await send() }
                                recorder.record(micros: 0)
                            case "sync":
                                await send()  // the sender itself waits, as a synchronous producer does
                            default:
                                pipeline.addTask { await send() }
                            }
                        }
                        try await pipeline.waitForAll()
                    }
                }
            }
            try await group.waitForAll()
        }
        progress.cancel()
        for channel in channels { await channel.close() }
        try printSummary(recorder.summary("produce-\(mode)", extra: ["size": spec.size, "concurrency": spec.concurrency, "connections": spec.connections], brokerPid: spec.brokerPid), json: options.json)
    }
}

/// `mqbench consume`: receives and acks until `count` messages arrived (or nothing came for 5 s),
/// checking each (sender, sequence) once and FIFO order per message group.
struct ConsumeBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "consume", abstract: "Receive and ack messages, measuring throughput and checking exactly-once and order.")

    @OptionGroup var options: ClusterOptions
    @Option(help: "Stop after this long without a message.") var idleSeconds = 5.0

    func run() async throws {
        ServerAllocator.activate()
        let spec = options.spec
        let idle = Duration.milliseconds(Int64(idleSeconds * 1000))
        let json = options.json
        try await spec.client.run { try printSummary(try await Consumption.run(spec, idle: idle, latencyFromBorn: false), json: json) }
    }
}

/// `mqbench e2e`: produces and consumes at once; latency is receive time minus the born time.
struct EndToEndBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "e2e", abstract: "Produce and consume at once; report produce→consume latency.")

    @OptionGroup var options: ClusterOptions
    @Option(help: "Messages per second to offer (0: as fast as possible), paced by the clock: a sender that falls behind catches up rather than lowering the rate.")
    var rate = 0
    @Option(help: "Concurrent senders (default: --concurrency, which is the number of receivers).") var senders: Int?

    func run() async throws {
        ServerAllocator.activate()
        let options = self.options.spec
        let json = self.options.json
        let rate = self.rate
        let senders = max(1, self.senders ?? options.concurrency)
        // The producing and the consuming side each run on an event loop of their own, tasks
        // included (with --client-threads 1, on one loop together): a call then costs no thread
        // hop, and the client's wake-ups do not compete with the broker for the cores.
        var sending = options
        var receiving = options
        if self.options.clientThreads > 1 {
            sending.client = ClientRuntime(threads: 1)
            receiving.client = ClientRuntime(threads: 1)
        }
        let consumer = receiving
        async let consumed = consumer.client.run { try await Consumption.run(consumer, idle: .seconds(5), latencyFromBorn: true) }
        let producer = sending
        let sendRate = try await producer.client.run { try await e2eSend(producer, rate: rate, senders: senders) }
        var summary = try await consumed
        // What the consumers saw is the summary; the producer's side says which rate was really
        // offered and how much of the latency the send itself took.
        summary["send_rate"] = sendRate.rate
        summary["senders"] = senders
        summary["send_errors"] = sendRate.errors
        summary["send_p50_us"] = sendRate.p50
        summary["send_p99_us"] = sendRate.p99
        try printSummary(summary, json: json)
    }

    /// Sends `count` messages at `rate` with `senders` concurrent senders; returns the rate
    /// achieved and the sends' summary (latency, errors).
    private func e2eSend(_ options: BenchSpec, rate: Int, senders: Int) async throws -> (rate: Double, errors: [String: Int], p50: UInt64, p99: UInt64) {
        let channel = try options.channel()
        let client = Apache_Rocketmq_V2_MessagingService.Client(channel: channel)
        let body = [UInt8](repeating: 0x61, count: options.size)
        // Message k (k = n × senders + sender) is due at start + k / rate: the offered rate holds
        // however long each send takes, as long as the senders together keep up.
        let spacing: Duration? = rate > 0 ? .nanoseconds(Int64(1_000_000_000 / Double(rate))) : nil
        let sending = { var spec = options; spec.concurrency = senders; return spec }()
        let sends = Recorder()
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for sender in 0..<senders {
                group.addTask {
                    for n in 0..<sending.share(of: sender) {
                        if let spacing { try await options.client.sleep(until: start + spacing * (n * senders + sender)) }
                        let request = BenchMessage.request(topic: options.topic, body: body, sender: sender, sequence: n, fifoGroups: options.fifoGroups)
                        await sends.timeSend(request, with: client, options: options.callOptions)
                    }
                }
            }
            try await group.waitForAll()
        }
        let sendSeconds = (ContinuousClock.now - start) / .seconds(1)
        await channel.close()
        return (Double(options.count) / sendSeconds, sends.errors, sends.latency(percentile: 50), sends.latency(percentile: 99))
    }
}

/// The consuming side shared by `consume` and `e2e`.
enum Consumption {
    static func run(_ options: BenchSpec, idle: Duration, latencyFromBorn: Bool) async throws -> [String: Any] {
        let channel = try options.channel()
        let client = Apache_Rocketmq_V2_MessagingService.Client(channel: channel)
        let recorder = Recorder()
        let checker = Checker()
        let progress = reportProgress(recorder, label: latencyFromBorn ? "e2e" : "consume")
        let callOptions = options.callOptions
        let lastArrival = LastArrival()
        let receiveCalls = Counter()
        if options.fifoGroups > 0 { try await declareFIFOSubscription(options, client: client) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for receiver in 0..<options.concurrency {
                group.addTask {
                    // A batch's ack travels while the next receive waits (at most one ack in
                    // flight per receiver), as push consumers do; awaiting it first would add its
                    // round trip to every message's latency.
                    var pendingAck: Task<Void, Never>?
                    while recorder.done < options.count, ContinuousClock.now - lastArrival.value < idle {
                        let request = Apache_Rocketmq_V2_ReceiveMessageRequest(
                            group: .init(name: options.group),
                            messageQueue: .init(topic: .init(name: options.topic), id: Int32(receiver)),
                            filterExpression: .init(type: .tag, expression: "*"), batchSize: 32,
                            invisibleDuration: .init(seconds: 60), longPollingTimeout: .init(seconds: 1))
                        let begin = ContinuousClock.now
                        let messages = try await client.receiveMessage(request, options: callOptions) { responses in
                            var messages: [Apache_Rocketmq_V2_Message] = []
                            for try await response in responses { if case .message(let m)? = response.content { messages.append(m) } }
                            return messages
                        }
                        receiveCalls.add()
                        guard !messages.isEmpty else { continue }
                        lastArrival.touch()
                        let nowMicros = UInt64(Date().timeIntervalSince1970 * 1_000_000)
                        for message in messages {
                            checker.check(message)
                            if latencyFromBorn, let born = message.userProperties["bench-born-us"].flatMap(UInt64.init) {
                                recorder.record(micros: nowMicros > born ? nowMicros - born : 0)
                            } else {
                                recorder.record(micros: UInt64((ContinuousClock.now - begin).microseconds))
                            }
                        }
                        let entries = messages.map { Apache_Rocketmq_V2_AckMessageEntry(messageId: $0.systemProperties?.messageId ?? "", receiptHandle: $0.systemProperties?.receiptHandle ?? "") }
                        let ackRequest = Apache_Rocketmq_V2_AckMessageRequest(group: .init(name: options.group), topic: .init(name: options.topic), entries: entries)
                        let ack = Task(executorPreference: options.client.executor) {
                            do {
                                let answer = try await client.ackMessage(ackRequest, options: callOptions)
                                if answer.status?.code != .ok { recorder.fail("ack " + (answer.status?.code.protoName ?? "NO_STATUS")) }
                            } catch {
                                recorder.fail("ack \(error)")
                            }
                        }
                        await pendingAck?.value
                        pendingAck = ack
                    }
                    await pendingAck?.value
                }
            }
            try await group.waitForAll()
        }
        progress.cancel()
        await channel.close()
        var extra = checker.report(expected: options.count)
        extra["receive_calls"] = receiveCalls.value
        return recorder.summary(latencyFromBorn ? "e2e" : "consume", extra: extra, brokerPid: options.brokerPid)
    }
}

/// Tells the broker, through the Telemetry settings handshake official clients use, that the
/// group consumes in FIFO order (a dev broker creates it so); order checks need that.
func declareFIFOSubscription(_ options: BenchSpec, client: Apache_Rocketmq_V2_MessagingService.Client) async throws {
    var subscription = Apache_Rocketmq_V2_Subscription()
    subscription.group = .init(name: options.group)
    subscription.fifo = true
    subscription.subscriptions = [.init(topic: .init(name: options.topic), expression: .init(type: .tag, expression: "*"))]
    var settings = Apache_Rocketmq_V2_Settings()
    settings.clientType = .pushConsumer
    settings.pubSub = .subscription(subscription)
    let command = Apache_Rocketmq_V2_TelemetryCommand(command: .settings(settings))
    let answer = try await client.telemetry(options: options.callOptions, requests: { writer in
        try await writer.write(command)
    }, handle: { responses in
        for try await response in responses { return response.status?.code }
        return nil
    })
    guard answer == .ok else { throw ValidationError("the broker refused the FIFO subscription: \(String(describing: answer))") }
}

/// A count shared by concurrent tasks.
final class Counter: Sendable {
    private let count = Atomic<Int>(0)
    func add() { count.add(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}

/// When the last message arrived, for the idle stop.
final class LastArrival: Sendable {
    private let instant = Mutex(ContinuousClock.now)
    var value: ContinuousClock.Instant { instant.withLock { $0 } }
    func touch() { instant.withLock { $0 = .now } }
}

/// Counts lost, duplicated and out-of-order messages by the (sender, sequence) each carries.
final class Checker: Sendable {
    private struct State {
        var seen = Set<String>()
        var duplicates = 0
        var lastSequence: [String: Int] = [:]
        var outOfOrder = 0
    }

    private let state = Mutex(State())

    func check(_ message: Apache_Rocketmq_V2_Message) {
        guard let id = message.userProperties["bench-id"] else { return }
        let sequence = Int(id.split(separator: "-").last ?? "") ?? 0
        let group = message.systemProperties?.messageGroup
        state.withLock { s in
            if !s.seen.insert(id).inserted { s.duplicates += 1 }
            if let group {
                if let last = s.lastSequence[group], sequence < last { s.outOfOrder += 1 }
                s.lastSequence[group] = max(sequence, s.lastSequence[group] ?? sequence)
            }
        }
    }

    func report(expected: Int) -> [String: Any] {
        let (unique, duplicates, outOfOrder) = state.withLock { ($0.seen.count, $0.duplicates, $0.outOfOrder) }
        return ["unique": unique, "duplicated": duplicates, "lost": max(0, expected - unique), "out_of_order": outOfOrder]
    }
}

enum BenchMessage {
    /// One message tagged with who sent it and its sequence, for the checker; FIFO ones use a
    /// message group per sender so the order within a group is the send order.
    static func request(topic: String, body: [UInt8], sender: Int, sequence: Int, fifoGroups: Int) -> Apache_Rocketmq_V2_SendMessageRequest {
        var system = Apache_Rocketmq_V2_SystemProperties()
        system.messageId = MessageIDGenerator.next()
        system.bodyEncoding = .identity
        system.messageType = fifoGroups > 0 ? .fifo : .normal
        if fifoGroups > 0 { system.messageGroup = "g\(sender % fifoGroups)" }
        system.bornTimestamp = .init(seconds: Int64(Date().timeIntervalSince1970), nanos: 0)
        let born = UInt64(Date().timeIntervalSince1970 * 1_000_000)
        let message = Apache_Rocketmq_V2_Message(
            topic: .init(name: topic),
            userProperties: ["bench-id": "\(sender)-\(sequence)", "bench-born-us": String(born)],
            systemProperties: system, body: body)
        return Apache_Rocketmq_V2_SendMessageRequest(messages: [message])
    }
}

extension Duration {
    var microseconds: Int64 { components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000 }
}
