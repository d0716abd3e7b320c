import ArgumentParser
import Foundation
import NIOCore
import NIOPosix
import RocketMQAPI
import RocketMQClient
import RocketMQStore
import RocketRPC

/// Options shared by `mqbench produce|consume|e2e`: where the broker is and what to send.
struct ClusterOptions: ParsableArguments {
    @Option(help: "Broker endpoint host:port (ignored with --dev).") var endpoint = "127.0.0.1:8081"
    @Flag(help: "Start a broker in this process and benchmark it (no cluster needed); --broker-* figures then cover the whole process, client included.")
    var dev = false
    @Option(help: "With --dev: the broker's flush mode, async or sync.") var flush = "async"
    @Option(help: "With --dev: the broker's data directory (default: a temporary one, removed at the end).") var data: String?
    @Option(help: "Topic (created on first use by a broker with auto-create). With --topics N > 1: <topic>-0 ... <topic>-(N-1).") var topic = "mqbench"
    @Option(help: "Topics to spread the work over: sender (or receiver) i uses topic i mod N.") var topics = 1
    @Option(help: "Create or update every topic with this many queues first (Admin UpsertTopic; needs --admin-token on a broker that has one). Without it the topics keep theirs.")
    var queues: Int?
    @Option(help: "The broker's admin credential, for --queues.") var adminToken: String?
    @Option(help: "Consumer group.") var group = "mqbench-group"
    @Option(help: "Message body size in bytes.") var size = 1024
    @Option(help: "Messages to send (or to expect, when consuming).") var count = 100_000
    @Option(help: "Run for this many seconds instead of a --count: senders stop then (consume: stop receiving then).")
    var duration: Double?
    @Option(help: "Concurrent senders / receivers.") var concurrency = 32
    @Option(help: "Message groups for FIFO sends (0: normal messages).") var fifoGroups = 0
    @Option(help: "pid of the broker, to report its CPU time and RSS.") var brokerPid: Int32?
    @Option(help: "Connections the senders share (produce); concurrency is connections × senders per connection.")
    var connections = 1
    @Option(help: "Client event-loop threads (default: one per core). With 1, every sender runs on the connection's event loop: no thread hops, but client and broker then take turns rather than overlap.")
    var clientThreads = System.coreCount
    @Flag(help: "Print the summary as one JSON line.") var json = false

    mutating func validate() throws {
        guard size >= 0 else { throw ValidationError("--size must not be negative") }
        guard count > 0 else { throw ValidationError("--count must be positive") }
        guard concurrency > 0 else { throw ValidationError("--concurrency must be positive") }
        guard (1...10_000).contains(topics) else { throw ValidationError("--topics must be 1...10000") }
        if let queues, !(1...1024).contains(queues) { throw ValidationError("--queues must be 1...1024") }
        if let duration, !(duration > 0) { throw ValidationError("--duration must be a positive number of seconds") }
        guard FlushMode(rawValue: flush) != nil else { throw ValidationError("--flush must be async or sync, got \(flush)") }
        if !dev, data != nil { throw ValidationError("--data is for --dev") }
    }

    /// The topics the work is spread over.
    var topicNames: [String] { topics == 1 ? [topic] : (0..<topics).map { "\(topic)-\($0)" } }

    /// Runs `body` with the options as a Sendable value, against an in-process broker with
    /// `--dev` (stopped afterwards), else against `--endpoint`.
    func withCluster<T>(_ body: (BenchSpec) async throws -> T) async throws -> T {
        var spec = BenchSpec(
            endpoint: endpoint, topics: topicNames, group: group, size: size, count: count,
            duration: duration.map { .milliseconds(Int64($0 * 1000)) }, concurrency: concurrency, fifoGroups: fifoGroups,
            stats: brokerPid.map { .broker(pid: $0) }, queues: queues, adminToken: adminToken, callOptions: callOptions,
            client: ClientRuntime(threads: clientThreads), connections: max(1, connections))
        guard dev else { return try await body(spec) }
        let broker = try await DevBroker.start(flush: FlushMode(rawValue: flush) ?? .async, data: data)
        spec.endpoint = broker.endpoint
        spec.stats = .process
        do {
            let result = try await body(spec)
            await broker.stop()
            return result
        } catch {
            await broker.stop()
            throw error
        }
    }

    private var callOptions: CallOptions {
        var options = CallOptions(timeout: .seconds(30))
        options.metadata.add("x-mq-client-id", "mqbench-\(ProcessInfo.processInfo.processIdentifier)")
        options.metadata.add("x-mq-language", "SWIFT")
        options.metadata.add("x-mq-protocol", "GRPC_V2")
        return options
    }
}

/// What the benchmark tasks need of the options.
struct BenchSpec: Sendable {
    var endpoint: String
    var topics: [String]
    var group: String
    var size: Int
    var count: Int
    /// Set by `--duration`: senders stop at a deadline rather than after `count`.
    var duration: Duration?
    var concurrency: Int
    var fifoGroups: Int
    /// Whose CPU time and RSS the summary reports.
    var stats: ProcessStats.Subject?
    var queues: Int?
    var adminToken: String?
    var callOptions: CallOptions
    var client: ClientRuntime
    var connections: Int

    /// The topic worker `index` (a sender or a receiver) uses.
    func topic(of index: Int) -> String { topics[index % topics.count] }

    /// How many of `count` messages sender `index` sends, so that the total is exactly `count`.
    func share(of index: Int) -> Int {
        count / concurrency + (index < count % concurrency ? 1 : 0)
    }

    /// The deadline of a `--duration` run that starts now; nil for a `--count` run.
    func deadline() -> ContinuousClock.Instant? { duration.map { .now + $0 } }

    /// Whether sender `index`, having sent `sent` messages, sends another: until its share of
    /// `count`, or until `deadline`.
    func sends(_ index: Int, after sent: Int, until deadline: ContinuousClock.Instant?) -> Bool {
        if let deadline { return ContinuousClock.now < deadline }
        return sent < share(of: index)
    }

    func channel() throws -> RPCChannel {
        guard let parsed = try? Endpoint(parsing: endpoint) else { throw ValidationError("--endpoint must be host:port") }
        return RPCChannel(configuration: ChannelConfiguration(host: parsed.host, port: parsed.port), eventLoopGroup: client.group)
    }

    /// `count` channels to the endpoint and each topic's writable queues (asked over the first,
    /// see `writableQueues(over:)`); the channels are closed again if the topics cannot be prepared.
    func channelsAndQueues(_ count: Int) async throws -> (channels: [RPCChannel], queues: [[Int32]]) {
        let channels = try (0..<count).map { _ in try channel() }
        do {
            return (channels, try await writableQueues(over: channels[0]))
        } catch {
            for channel in channels { await channel.close() }
            throw error
        }
    }

    /// Prepares every topic as a producer finds it: with `--queues`, creates or resizes it
    /// through the Admin service first; then asks its route and returns the writable queues
    /// the senders rotate over, per topic (in `topics` order).
    func writableQueues(over channel: RPCChannel) async throws -> [[Int32]] {
        let messaging = Apache_Rocketmq_V2_MessagingService.Client(channel: channel)
        var result: [[Int32]] = []
        for name in topics {
            if let queues {
                var options = callOptions
                if let adminToken { options.metadata.add("authorization", "Bearer " + adminToken) }
                let topic = Rocketmq_Admin_V1_Topic(
                    name: name, queueCount: Int32(queues), permission: 6, messageTypes: ["NORMAL", "FIFO"])
                do {
                    _ = try await Rocketmq_Admin_V1_Admin.Client(channel: channel)
                        .upsertTopic(Rocketmq_Admin_V1_UpsertTopicRequest(topic: topic), options: options)
                } catch let error as RPCError {
                    throw ValidationError("could not create topic \(name) with \(queues) queues: \(error.code) \(error.message)")
                }
            }
            var request = Apache_Rocketmq_V2_QueryRouteRequest()
            request.topic = .init(name: name)
            let route = try await messaging.queryRoute(request, options: callOptions)
            guard route.status?.code == .ok else {
                throw ValidationError("no route for topic \(name): \(route.status?.code.protoName ?? "NO_STATUS") \(route.status?.message ?? "")")
            }
            let writable = route.messageQueues.filter(\.isWritable).map(\.id).sorted()
            guard !writable.isEmpty else { throw ValidationError("topic \(name) has no writable queue") }
            result.append(writable)
        }
        return result
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
