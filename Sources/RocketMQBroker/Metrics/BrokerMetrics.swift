import Foundation
import Prometheus
import RocketMQStore

/// The broker's state in the Prometheus text format, for `GET /metrics`.
///
/// Nothing is counted on the send or receive path: a scrape reads what the broker keeps anyway
/// (queue offsets, consumer progress, the flusher's totals, `/proc/self`), so metrics cost
/// nothing between scrapes. A total read that way (messages in per topic) is a counter: it only
/// grows, unless its topic is deleted and created again, which Prometheus' `rate()` takes as a
/// counter reset. Label sets that disappear (a deleted topic or group) are dropped from the next
/// scrape. An actor whose `render` awaits nothing once it starts changing the registry, so
/// concurrent scrapes never interleave their updates.
public actor BrokerMetrics {
    private let broker: Broker
    private let registry = PrometheusCollectorRegistry()
    /// The labelled series the last scrape wrote, to unregister those the next one no longer has.
    private var counters: [SeriesKey: Counter] = [:]
    private var gauges: [SeriesKey: Gauge] = [:]

    private struct SeriesKey: Hashable {
        var name: String
        var labels: [String]
    }

    public init(broker: Broker) {
        self.broker = broker
    }

    /// `name` whole (the unit is part of it, as in `_bytes` or `_total`).
    private static func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    /// The current state, rendered in the Prometheus text exposition format (version 0.0.4).
    public func render() async -> [UInt8] {
        // The one await, before any state changes (an actor admits another call at an await).
        let progress = await broker.consumption.progressSummary()
        var seenCounters = Set<SeriesKey>()
        var seenGauges = Set<SeriesKey>()
        func total(_ name: String, _ help: String, _ labels: [(String, String)] = [], _ value: Double) {
            let key = SeriesKey(name: name, labels: labels.flatMap { [$0.0, $0.1] })
            let counter = counters[key] ?? registry.makeCounter(descriptor: Self.descriptor(name, help), labels: labels)
            counters[key] = counter
            seenCounters.insert(key)
            counter.reset()
            counter.increment(by: value)
        }
        func gauge(_ name: String, _ help: String, _ labels: [(String, String)] = [], _ value: Double) {
            let key = SeriesKey(name: name, labels: labels.flatMap { [$0.0, $0.1] })
            let gauge = gauges[key] ?? registry.makeGauge(descriptor: Self.descriptor(name, help), labels: labels)
            gauges[key] = gauge
            seenGauges.insert(key)
            gauge.set(value)
        }

        let configuration = broker.configuration
        let store = broker.store
        gauge("rocketmq_broker_info", "The broker's identity; the value is always 1.",
              [("cluster", configuration.clusterName), ("broker", configuration.brokerName),
               ("flush_mode", configuration.store.flushMode.rawValue)], 1)
        gauge("rocketmq_broker_start_time_seconds", "When the broker started, in seconds since the epoch.", [], broker.startedAt.timeIntervalSince1970)

        // Topics and what they took in: one past the last queue offset is the count of messages
        // a queue ever stored (retention moves its minimum, never its maximum). Every queue the
        // store holds counts, those past a topic's current queue count too, so the counter does
        // not fall when the topic is shrunk.
        let topics = broker.topics.all.filter { !SystemTopic.isSystem($0.name) }
        gauge("rocketmq_topics", "Topics, retry and dead-letter topics included (system topics not).", [], Double(topics.count))
        gauge("rocketmq_consumer_groups", "Consumer groups.", [], Double(broker.groups.all.count))
        gauge("rocketmq_clients", "Producers and consumers that heartbeat to this broker.", [], Double(broker.clients.all.count))
        gauge("rocketmq_transactions_open", "Half messages neither committed nor rolled back yet.", [], Double(broker.openTransactions))
        gauge("rocketmq_delay_messages_pending", "Delay messages waiting for their delivery time.", [], Double(broker.pendingDelayMessages))
        total("rocketmq_delay_messages_delivered_total", "Delay messages copied to their queue when due, since the broker started.", [],
              Double(broker.delays.deliveredCount))
        total("rocketmq_delay_messages_rolled_total",
              "Delay messages (and remembered recalls) copied to the schedule's end since the broker started, so that retention can take their old segment.",
              [], Double(broker.delays.rolledCount))
        var queueCounts: [String: Int32] = [:]
        var stored: [String: Int64] = [:]
        for queue in store.queueIDs() { stored[queue.topic, default: 0] += store.maxOffset(topic: queue.topic, queueId: queue.queueId) }
        for topic in topics {
            queueCounts[topic.name] = topic.queueCount
            total("rocketmq_messages_in_total", "Messages stored in the topic's queues.", [("topic", topic.name)], Double(stored[topic.name] ?? 0))
        }

        // Consumer lag, as `mqadmin consumerProgress` counts it: for each group that exists and
        // each topic it has progress in (and its own retry topic), every queue of it, those never
        // consumed from their minimum offset. (A deleted group's progress stays in the journal; it is not reported.)
        struct Pair: Hashable { var group: String, topic: String }
        var committed: [Pair: [Int32: Int64]] = [:]
        var inFlight: [Pair: Int] = [:]
        let groups = Set(broker.groups.all.map(\.name))
        for entry in progress where groups.contains(entry.key.group) && queueCounts[entry.key.topic] != nil {
            let pair = Pair(group: entry.key.group, topic: entry.key.topic)
            committed[pair, default: [:]][entry.key.queueId] = entry.committed
            inFlight[pair, default: 0] += entry.inFlight
        }
        // A group's own retry topic counts whether or not it has read from it yet.
        for group in groups where queueCounts[SystemTopic.retry(group: group)] != nil {
            let pair = Pair(group: group, topic: SystemTopic.retry(group: group))
            if committed[pair] == nil { committed[pair] = [:] }
        }
        for (pair, offsets) in committed {
            let lag = (0..<(queueCounts[pair.topic] ?? 0)).reduce(Int64(0)) {
                $0 + broker.standing(topic: pair.topic, queueId: $1, committed: offsets[$1]).lag
            }
            let labels = [("consumer_group", pair.group), ("topic", pair.topic)]
            gauge("rocketmq_consumer_lag_messages", "Messages stored but not yet consumed (acknowledged) by the group.", labels, Double(lag))
            gauge("rocketmq_consumer_inflight_messages", "Messages delivered to the group and not yet acknowledged.", labels, Double(inFlight[pair] ?? 0))
        }

        // The store: the log's extent and the flusher's totals.
        gauge("rocketmq_storage_size_bytes", "Bytes of CommitLog kept (from the oldest retained record to the end).", [],
              Double(store.commitLogMaxOffset - store.commitLogMinOffset))
        gauge("rocketmq_storage_flush_behind_bytes", "Bytes of CommitLog written but not yet synced to disk.", [],
              Double(max(0, store.commitLogMaxOffset - store.commitLogFlushedOffset)))
        let flushes = store.flushStatistics
        total("rocketmq_storage_flushes_total", "CommitLog flush rounds (each writes out what is staged and fdatasyncs).", [], Double(flushes.flushes))
        total("rocketmq_storage_flush_seconds_total", "Time the flusher spent writing out and syncing.", [], flushes.flushing.timeInterval)
        total("rocketmq_storage_flusher_idle_seconds_total", "Time the flusher waited for something to flush.", [], flushes.idle.timeInterval)
        total("rocketmq_storage_group_commit_appends_total", "Sync flush: appends acknowledged by flush rounds (divided by the rounds: the mean group size).", [],
              Double(flushes.groupCommitAppends))

        // The process, under the names Prometheus' own client libraries use.
        let process = ProcessSample.current()
        if let cpu = process.cpuSeconds { total("process_cpu_seconds_total", "User and system CPU time spent, in seconds.", [], cpu) }
        if let rss = process.residentBytes { gauge("process_resident_memory_bytes", "Resident memory size in bytes.", [], Double(rss)) }
        if let fds = process.openFileDescriptors { gauge("process_open_fds", "Open file descriptors.", [], Double(fds)) }

        for (key, counter) in counters where !seenCounters.contains(key) {
            registry.unregisterCounter(counter)
            counters[key] = nil
        }
        for (key, gauge) in gauges where !seenGauges.contains(key) {
            registry.unregisterGauge(gauge)
            gauges[key] = nil
        }
        return registry.emitToBuffer()
    }
}

/// CPU time, resident memory and open descriptors of this process, from `/proc/self` (Linux).
struct ProcessSample {
    var cpuSeconds: Double?
    var residentBytes: Int?
    var openFileDescriptors: Int?

    static func current() -> ProcessSample {
        var sample = ProcessSample()
        // Fields after the command name (which may hold spaces): utime and stime are the 12th and
        // 13th from there, in clock ticks; rss (pages) is the 22nd.
        if let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
           let end = stat.lastIndex(of: ")") {
            let fields = stat[stat.index(after: end)...].split(separator: " ")
            let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
            if fields.count > 21, let user = Double(fields[11]), let system = Double(fields[12]), ticks > 0 {
                sample.cpuSeconds = (user + system) / ticks
            }
            if fields.count > 21, let pages = Int(fields[21]) {
                sample.residentBytes = pages * Int(sysconf(Int32(_SC_PAGESIZE)))
            }
        }
        sample.openFileDescriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd"))?.count
        return sample
    }
}
