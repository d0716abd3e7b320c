import Foundation
import Histogram
import RocketMQAPI
import RocketMQClient
import RocketRPC
import Synchronization

/// Latencies (µs) and error counts shared by concurrent tasks, plus a once-a-second progress line.
final class Recorder: Sendable {
    private struct State {
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        var done = 0
        var errors: [String: Int] = [:]
    }

    private let state = Mutex(State())
    /// Body bytes per message, for MB/s.
    let messageSize: Int
    let started = ContinuousClock.now
    /// The machine's CPU counters when the run started: the summary says how busy it was.
    private let hostAtStart = HostCPU.sample()

    init(messageSize: Int) {
        self.messageSize = messageSize
    }

    func record(micros: UInt64) {
        state.withLock {
            _ = $0.histogram.record(min(micros, 60_000_000))
            $0.done += 1
        }
    }

    func fail(_ reason: String) {
        state.withLock { $0.errors[reason, default: 0] += 1 }
    }

    /// Sends `request` and records its latency (unless `latency` is false: one-way sends are
    /// counted when issued), or its status or error as a failure; returns whether the broker
    /// acknowledged it.
    @discardableResult
    func timeSend(
        _ request: Apache_Rocketmq_V2_SendMessageRequest, with client: Apache_Rocketmq_V2_MessagingService.Client, options: CallOptions,
        latency: Bool = true
    ) async -> Bool {
        let begin = ContinuousClock.now
        do {
            let response = try await client.sendMessage(request, options: options)
            if response.status?.code == .ok {
                if latency { record(micros: UInt64((ContinuousClock.now - begin).microseconds)) }
                return true
            }
            fail(response.status?.code.protoName ?? "NO_STATUS")
        } catch {
            fail("\(error)")
        }
        return false
    }

    var done: Int { state.withLock { $0.done } }
    var errors: [String: Int] { state.withLock { $0.errors } }
    func latency(percentile: Double) -> UInt64 { state.withLock { $0.histogram.valueAtPercentile(percentile) } }

    func progressLine(_ label: String) -> String {
        let seconds = max((ContinuousClock.now - started) / .seconds(1), 1e-9)
        return state.withLock { s in
            let rate = Double(s.done) / seconds
            return "\(label): \(s.done) done, \(Int(rate)) /s, \(Self.megabytes(rate * Double(messageSize))) MB/s, p50 \(s.histogram.valueAtPercentile(50)) µs, p99 \(s.histogram.valueAtPercentile(99)) µs, errors \(s.errors.values.reduce(0, +))"
        }
    }

    func summary(_ label: String, extra: [String: Any] = [:], stats: ProcessStats.Subject?) -> [String: Any] {
        let (done, p50, p99, p999, maximum, errors) = state.withLock { s in
            (s.done, s.histogram.valueAtPercentile(50), s.histogram.valueAtPercentile(99),
             s.histogram.valueAtPercentile(99.9), s.histogram.max, s.errors)
        }
        let seconds = (ContinuousClock.now - started) / .seconds(1)
        let rate = Double(done) / seconds
        var result: [String: Any] = [
            "scenario": label, "count": done, "seconds": seconds, "rate": rate,
            "size": messageSize, "mb_per_s": Self.megabytes(rate * Double(messageSize)),
            "p50_us": p50, "p99_us": p99, "p999_us": p999, "max_us": maximum, "errors": errors,
        ]
        if let stats { result.merge(ProcessStats.of(stats)) { $1 } }
        // This process's CPU too, unless it is the subject already (--dev): on a machine the
        // client shares with the broker, its cost is part of the result.
        if case .process? = stats {} else if let client = ProcessStats.of(.process)["process_cpu_seconds"] {
            result["client_cpu_seconds"] = client
        }
        if let start = hostAtStart, let end = HostCPU.sample() { result.merge(end.since(start)) { $1 } }
        result.merge(extra) { $1 }
        return result
    }

    /// Bytes per second as MB/s (10^6), two decimals.
    private static func megabytes(_ bytesPerSecond: Double) -> Double { (bytesPerSecond / 10_000).rounded() / 100 }
}

/// CPU seconds and RSS of a process, from /proc.
enum ProcessStats {
    enum Subject: Sendable {
        /// An external broker, by pid: `broker_*` keys.
        case broker(pid: Int32)
        /// This process (`--dev`: broker and client together): `process_*` keys.
        case process
    }

    static func of(_ subject: Subject) -> [String: Any] {
        let (pid, prefix) = switch subject {
        case .broker(let pid): (pid, "broker")
        case .process: (getpid(), "process")
        }
        var result: [String: Any] = [:]
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) {
            let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
            if fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) {
                result["\(prefix)_cpu_seconds"] = (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
            }
        }
        if let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) {
            for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") || line.hasPrefix("VmHWM:") {
                let kib = Double(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
                result[line.hasPrefix("VmRSS:") ? "\(prefix)_rss_mib" : "\(prefix)_peak_rss_mib"] = kib / 1024
            }
        }
        return result
    }
}

/// The machine's CPU time counters (`/proc/stat`, all CPUs), in clock ticks.
struct HostCPU {
    var busy: UInt64
    var idle: UInt64
    var steal: UInt64

    static func sample() -> HostCPU? {
        guard let stat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
              let line = stat.split(separator: "\n").first, line.hasPrefix("cpu ")
        else { return nil }
        // user nice system idle iowait irq softirq steal (guest time is inside user)
        let ticks = line.split(separator: " ").dropFirst().prefix(8).compactMap { UInt64($0) }
        guard ticks.count == 8 else { return nil }
        return HostCPU(busy: ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6], idle: ticks[3] + ticks[4], steal: ticks[7])
    }

    /// How the machine's CPU time went between `start` and this sample, in percent: busy (any
    /// process, the kernel's interrupt work included) and taken by the hypervisor (steal).
    func since(_ start: HostCPU) -> [String: Any] {
        let (busy, idle, steal) = (self.busy &- start.busy, self.idle &- start.idle, self.steal &- start.steal)
        let total = Double(busy + idle + steal)
        guard total > 0 else { return [:] }
        return ["host_busy_percent": (Double(busy) * 1000 / total).rounded() / 10, "host_steal_percent": (Double(steal) * 1000 / total).rounded() / 10]
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

/// Which messages the broker acknowledged (e2e): what the checker must find consumed.
final class AcknowledgedSends: Sendable {
    private let ids = Mutex(Set<UInt64>())

    func add(sender: Int, sequence: Int) {
        let id = BenchMessage.key(sender: sender, sequence: sequence)
        _ = ids.withLock { $0.insert(id) }
    }

    var all: Set<UInt64> { ids.withLock { $0 } }
}

/// Counts lost, duplicated and out-of-order messages by the (sender, sequence) each carries.
/// It runs wherever messages are consumed and checked, so it stays independent of the load
/// shape (later also under chaos).
///
/// Order is checked per message group and sender: a group's order is the order its sends
/// reached the broker, which the checker cannot know across senders (with more senders than
/// groups, several share one). One sender numbers its sends in the order it makes them; where
/// each waits for the one before (sync mode) they must come back rising. Sends in flight
/// together (async mode) may be stored in another order, and that is counted too: it is what
/// a FIFO consumer of the group then sees.
final class Checker: Sendable {
    private struct State {
        var seen = Set<UInt64>()
        var duplicates = 0
        var lastSequence: [OrderKey: Int] = [:]
        var outOfOrder = 0
        var foreign = 0
    }

    private struct OrderKey: Hashable {
        let group: String
        let sender: Int
    }

    private let state = Mutex(State())

    func check(_ message: Apache_Rocketmq_V2_Message) {
        guard let (sender, sequence) = message.userProperties["bench-id"].flatMap(BenchMessage.parse) else {
            state.withLock { $0.foreign += 1 }
            return
        }
        let group = message.systemProperties?.messageGroup
        state.withLock { s in
            if !s.seen.insert(BenchMessage.key(sender: sender, sequence: sequence)).inserted { s.duplicates += 1 }
            if let group {
                let key = OrderKey(group: group, sender: sender)
                if let last = s.lastSequence[key], sequence < last { s.outOfOrder += 1 }
                s.lastSequence[key] = max(sequence, s.lastSequence[key] ?? sequence)
            }
        }
    }

    /// `lost` counts the acknowledged messages never consumed when those are known (e2e),
    /// else how far the unique count falls short of `expected`.
    func report(expected: Int, acknowledged: Set<UInt64>? = nil) -> [String: Any] {
        let (seen, duplicates, outOfOrder, foreign) = state.withLock { ($0.seen, $0.duplicates, $0.outOfOrder, $0.foreign) }
        let lost = acknowledged.map { $0.subtracting(seen).count } ?? max(0, expected - seen.count)
        return ["unique": seen.count, "duplicated": duplicates, "lost": lost, "out_of_order": outOfOrder, "foreign": foreign]
    }
}

/// The clock of `bench-born-us`: wall-clock microseconds since 1970, comparable across the
/// sending and the receiving process.
enum BornClock {
    /// Now, or `seconds` from now.
    static func microseconds(_ seconds: Double = 0) -> UInt64 {
        UInt64((Date().timeIntervalSince1970 + seconds) * 1_000_000)
    }
}

enum BenchMessage {
    /// One message tagged with who sent it and its sequence, for the checker, bound for one of
    /// `queues` in turn (as a producer rotates over a route's writable queues; the broker places
    /// FIFO ones by message group). FIFO ones use a message group per sender, so the order within
    /// a group is the send order.
    static func request(topic: String, queues: [Int32], body: [UInt8], sender: Int, sequence: Int, fifoGroups: Int) -> Apache_Rocketmq_V2_SendMessageRequest {
        var system = Apache_Rocketmq_V2_SystemProperties()
        system.messageId = MessageIDGenerator.next()
        system.bodyEncoding = .identity
        system.messageType = fifoGroups > 0 ? .fifo : .normal
        system.queueId = queues[(sender + sequence) % queues.count]
        if fifoGroups > 0 { system.messageGroup = "g\(sender % fifoGroups)" }
        system.bornTimestamp = .init(seconds: Int64(Date().timeIntervalSince1970), nanos: 0)
        let born = BornClock.microseconds()
        let message = Apache_Rocketmq_V2_Message(
            topic: .init(name: topic),
            userProperties: ["bench-id": "\(sender)-\(sequence)", "bench-born-us": String(born)],
            systemProperties: system, body: body)
        return Apache_Rocketmq_V2_SendMessageRequest(messages: [message])
    }

    static func key(sender: Int, sequence: Int) -> UInt64 { UInt64(truncatingIfNeeded: sender) << 40 | UInt64(truncatingIfNeeded: sequence) }

    /// The (sender, sequence) of a `bench-id` property.
    static func parse(_ id: String) -> (Int, Int)? {
        let parts = id.split(separator: "-")
        guard parts.count == 2, let sender = Int(parts[0]), let sequence = Int(parts[1]) else { return nil }
        return (sender, sequence)
    }
}

extension Duration {
    var microseconds: Int64 { components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000 }
}
