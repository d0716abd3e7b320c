import ArgumentParser
import Foundation
import RocketMQAPI
import RocketRPC
import ServerAllocator
import Synchronization

/// `mqbench consume`: receives and acks until `count` messages arrived (or for a --duration, or
/// until nothing came for a while), checking each (sender, sequence) once and FIFO order per
/// message group.
struct ConsumeBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "consume", abstract: "Receive and ack messages, measuring throughput and checking exactly-once and order.")

    @OptionGroup var options: ClusterOptions
    @Option(help: "Stop after this long without a message.") var idleSeconds = 5.0

    func validate() throws {
        guard options.concurrency >= options.topics else { throw ValidationError("--concurrency must be at least --topics: every topic needs a receiver") }
    }

    func run() async throws {
        ServerAllocator.activate()
        let idle = Duration.milliseconds(Int64(idleSeconds * 1000))
        let json = options.json
        let summary = try await options.withCluster { spec in
            try await spec.client.run {
                try await Consumption.run(spec, idle: idle, latencyFromBorn: false, expected: ExpectedCount(spec.count), until: spec.deadline())
            }
        }
        try printSummary(summary, json: json)
    }
}

/// How many messages the consumers wait for: `--count`, or (e2e with `--duration`) unknown
/// until the producers have finished and say how many the broker acknowledged.
final class ExpectedCount: Sendable {
    private let count: Atomic<Int>

    init(_ count: Int) { self.count = Atomic(count) }

    var value: Int { count.load(ordering: .relaxed) }
    func set(_ value: Int) { count.store(value, ordering: .relaxed) }
}

/// The consuming side shared by `consume` and `e2e`: receiver i reads topic i mod N.
enum Consumption {
    static func run(
        _ options: BenchSpec, idle: Duration, latencyFromBorn: Bool, expected: ExpectedCount, until deadline: ContinuousClock.Instant?,
        acknowledged: AcknowledgedSends? = nil, steadyFromMicros: UInt64? = nil
    ) async throws -> [String: Any] {
        let channel = try options.channel()
        let client = Apache_Rocketmq_V2_MessagingService.Client(channel: channel)
        let recorder = Recorder(messageSize: options.size)
        // e2e with a warm-up: the latencies of messages born after it, apart.
        let steady = steadyFromMicros.map { (from: $0, recorder: Recorder(messageSize: options.size)) }
        // ... and split into where the time went (steady messages only, or all without a warm-up).
        let phases = latencyFromBorn ? LatencyPhases(messageSize: options.size) : nil
        let checker = Checker()
        let progress = reportProgress(recorder, label: latencyFromBorn ? "e2e" : "consume")
        let callOptions = options.callOptions
        let lastArrival = LastArrival()
        let receiveCalls = Counter()
        if options.fifoGroups > 0 { try await declareFIFOSubscription(options, client: client) }
        let topicCount = options.topics.count
        try await withThrowingTaskGroup(of: Void.self) { group in
            for receiver in 0..<options.concurrency {
                group.addTask {
                    // A batch's ack travels while the next receive waits (at most one ack in
                    // flight per receiver), as push consumers do; awaiting it first would add its
                    // round trip to every message's latency.
                    var pendingAck: Task<Void, Never>?
                    let topic = options.topic(of: receiver)
                    while recorder.done < expected.value, ContinuousClock.now - lastArrival.value < idle,
                          deadline.map({ ContinuousClock.now < $0 }) ?? true {
                        let request = Apache_Rocketmq_V2_ReceiveMessageRequest(
                            group: .init(name: options.group),
                            messageQueue: .init(topic: .init(name: topic), id: Int32(receiver / topicCount)),
                            filterExpression: .init(type: .tag, expression: "*"), batchSize: 32,
                            invisibleDuration: .init(seconds: 60), longPollingTimeout: .init(seconds: 1))
                        let begin = ContinuousClock.now
                        let (messages, refusal, delivered) = try await client.receiveMessage(request, options: callOptions) { responses in
                            var messages: [Apache_Rocketmq_V2_Message] = []
                            var refusal: Apache_Rocketmq_V2_Status?
                            var delivered: Google_Protobuf_Timestamp?
                            for try await response in responses {
                                switch response.content {
                                case .message(let m)?: messages.append(m)
                                case .status(let status)? where status.code != .ok && status.code != .messageNotFound: refusal = status
                                case .deliveryTimestamp(let t)?: delivered = t
                                default: break
                                }
                            }
                            return (messages, refusal, delivered)
                        }
                        // An unknown group or topic, a missing permission: say so rather than
                        // wait for messages that cannot come.
                        if let refusal {
                            throw ValidationError("the broker refused ReceiveMessage on \(topic): \(refusal.code.protoName ?? "code \(refusal.code.rawValue)") \(refusal.message)")
                        }
                        receiveCalls.add()
                        guard !messages.isEmpty else { continue }
                        lastArrival.touch()
                        let nowMicros = BornClock.microseconds()
                        for message in messages {
                            checker.check(message)
                            if latencyFromBorn, let born = message.userProperties["bench-born-us"].flatMap(UInt64.init) {
                                let latency = nowMicros > born ? nowMicros - born : 0
                                recorder.record(micros: latency)
                                let isSteady = steady.map { born >= $0.from } ?? true
                                if let steady, isSteady { steady.recorder.record(micros: latency) }
                                if let phases, isSteady {
                                    phases.record(born: born, message: message, delivered: delivered, received: nowMicros)
                                }
                            } else {
                                recorder.record(micros: UInt64((ContinuousClock.now - begin).microseconds))
                            }
                        }
                        let entries = messages.map { Apache_Rocketmq_V2_AckMessageEntry(messageId: $0.systemProperties?.messageId ?? "", receiptHandle: $0.systemProperties?.receiptHandle ?? "") }
                        let ackRequest = Apache_Rocketmq_V2_AckMessageRequest(group: .init(name: options.group), topic: .init(name: topic), entries: entries)
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
        var extra = checker.report(expected: expected.value, acknowledged: acknowledged?.all)
        extra["receive_calls"] = receiveCalls.value
        extra["topics"] = topicCount
        if let steady = steady?.recorder {
            extra["steady_count"] = steady.done
            extra["steady_p50_us"] = steady.latency(percentile: 50)
            extra["steady_p99_us"] = steady.latency(percentile: 99)
            extra["steady_max_us"] = steady.latency(percentile: 100)
        }
        if let phases { extra.merge(phases.summary()) { $1 } }
        return recorder.summary(latencyFromBorn ? "e2e" : "consume", extra: extra, stats: options.stats)
    }
}

/// Where an e2e message's latency went, from the timestamps on the way: born (the sender's
/// clock, µs) → stored (the broker's store timestamp, ms) → delivered (the broker's delivery
/// timestamp on the receive answer, µs) → received (the receiver's clock, µs). All are the
/// wall clock of one machine here; the stored phase is only as fine as its millisecond (so the
/// stored mark is taken mid-millisecond).
final class LatencyPhases: Sendable {
    /// Born → stored: the send's way in, the broker's queueing and its append.
    private let stored: Recorder
    /// Stored → delivered: waiting in the queue for a receiver's scan (long poll wake-up, the
    /// scan, the read).
    private let waited: Recorder
    /// Delivered → received: the answer's way out, through the receiver's decoding.
    private let travelled: Recorder

    init(messageSize: Int) {
        (stored, waited, travelled) = (Recorder(messageSize: messageSize), Recorder(messageSize: messageSize), Recorder(messageSize: messageSize))
    }

    func record(born: UInt64, message: Apache_Rocketmq_V2_Message, delivered: Google_Protobuf_Timestamp?, received: UInt64) {
        guard let storeMillis = message.systemProperties?.storeTimestamp?.milliseconds, storeMillis > 0, let delivered else { return }
        let storedAt = UInt64(storeMillis) * 1000 + 500
        let deliveredAt = UInt64(max(0, delivered.seconds)) * 1_000_000 + UInt64(max(0, delivered.nanos)) / 1000
        func span(_ from: UInt64, _ to: UInt64) -> UInt64 { to > from ? to - from : 0 }
        stored.record(micros: span(born, storedAt))
        waited.record(micros: span(storedAt, deliveredAt))
        travelled.record(micros: span(deliveredAt, received))
    }

    func summary() -> [String: Any] {
        var result: [String: Any] = ["phase_count": stored.done]
        for (name, recorder) in [("stored", stored), ("waited", waited), ("travelled", travelled)] {
            result["phase_\(name)_p50_us"] = recorder.latency(percentile: 50)
            result["phase_\(name)_p99_us"] = recorder.latency(percentile: 99)
            result["phase_\(name)_max_us"] = recorder.latency(percentile: 100)
        }
        return result
    }
}

/// Tells the broker, through the Telemetry settings handshake official clients use, that the
/// group consumes its topics in FIFO order (a dev broker creates it so); order checks need that.
func declareFIFOSubscription(_ options: BenchSpec, client: Apache_Rocketmq_V2_MessagingService.Client) async throws {
    var subscription = Apache_Rocketmq_V2_Subscription()
    subscription.group = .init(name: options.group)
    subscription.fifo = true
    subscription.subscriptions = options.topics.map { .init(topic: .init(name: $0), expression: .init(type: .tag, expression: "*")) }
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
