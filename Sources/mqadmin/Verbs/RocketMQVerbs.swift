import ArgumentParser
import Foundation
import RocketMQAPI
import RocketRPC

/// RocketMQ's familiar `mqadmin` verbs, on top of the NameServer registry and the broker's
/// `rocketmq.admin.v1.Admin` service. `mqadmin VERB -h` explains each.
struct RocketMQVerbs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mqadmin",
        abstract: "RocketMQ admin verbs (clusterList, topicList, updateTopic, consumerProgress, ...).",
        subcommands: [
            ClusterList.self, BrokerStatus.self, GetBrokerConfig.self, UpdateBrokerConfig.self,
            TopicList.self, TopicStatus.self, TopicRoute.self, UpdateTopic.self, DeleteTopic.self,
            UpdateSubGroup.self, DeleteSubGroup.self, ConsumerProgress.self, ResetOffsetByTime.self,
            QueryMsgById.self, QueryMsgByKey.self, QueryMsgByOffset.self, QueryMsgTraceById.self,
            ResendMsg.self, DLQList.self, DLQRedrive.self, HAStatus.self, PromoteToMaster.self,
        ]
    )

    static let names: Set<String> = Set(configuration.subcommands.compactMap { $0.configuration.commandName })
}

struct ClusterList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "clusterList", abstract: "Clusters and their brokers, from a NameServer.")
    @OptionGroup var target: ClusterTarget

    func run() async throws {
        let (known, clusters) = try await target.clusters()
        if let name = target.cluster, clusters.isEmpty {
            let names = known.map(\.name).sorted()
            throw VerbError("no cluster named \(name); the NameServer knows \(names.isEmpty ? "none" : names.joined(separator: ", "))")
        }
        let rows = clusters.flatMap { cluster in
            cluster.brokers.map { broker in
                [cluster.name, broker.brokerName, String(broker.brokerId), broker.role == .master ? "MASTER" : "SLAVE",
                 broker.endpoints.joined(separator: ","), String(broker.topicCount), broker.lastHeartbeat?.text ?? ""]
            }
        }
        target.output(["cluster", "broker", "id", "role", "address", "topics", "lastHeartbeat"], rows)
    }
}

struct BrokerStatus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "brokerStatus", abstract: "A broker's identity and store offsets.")
    @OptionGroup var target: ClusterTarget

    func run() async throws {
        let rows = try await target.eachBroker { _, admin in
            let s = try await admin.getBrokerStatus(.init(), options: target.callOptions)
            return [s.clusterName, s.brokerName, String(s.brokerId), s.address, s.flushMode, String(s.topicCount), String(s.groupCount),
                    String(s.clientCount), String(s.commitLogMinOffset), String(s.commitLogMaxOffset), String(s.commitLogFlushedOffset),
                    String(s.openTransactions), String(s.pendingDelayMessages)]
        }
        target.output(
            ["cluster", "broker", "id", "address", "flush", "topics", "groups", "clients", "minOffset", "maxOffset", "flushedOffset", "openTransactions",
             "pendingDelayMessages"],
            rows)
    }
}

struct HAStatus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "haStatus", abstract: "Replication: each master's slaves and how far behind they are, each slave's master.")
    @OptionGroup var target: ClusterTarget

    func run() async throws {
        let rows = try await target.eachBroker { address, admin in
            let s = try await admin.getReplicationStatus(.init(), options: target.callOptions)
            if s.role == "SLAVE" {
                return [[address, s.role, String(s.brokerId), String(s.commitLogMaxOffset), s.masterAddress,
                         s.connected ? "connected" : "down" + (s.lastError.isEmpty ? "" : ": " + s.lastError), String(s.lagBytes)]]
            }
            if !s.failover.isEmpty { FileHandle.standardError.write(Data("\(address): \(s.failover)\n".utf8)) }
            // A master that takes no writes says so in every row of its own.
            let refused = s.writesRefused.isEmpty ? "" : "takes no writes: " + s.writesRefused
            if s.replicas.isEmpty {
                return [[address, s.role, String(s.brokerId), String(s.commitLogMaxOffset), "", refused.isEmpty ? "no slave" : refused, ""]]
            }
            return s.replicas.map { replica in
                [address, s.role, String(s.brokerId), String(s.commitLogMaxOffset), "\(replica.address) (id \(replica.brokerId))",
                 "acked \(replica.acknowledgedOffset)" + (refused.isEmpty ? "" : "; " + refused), String(replica.lagBytes)]
            }
        }.flatMap { $0 }
        target.output(["broker", "role", "id", "maxOffset", "peer", "state", "lagBytes"], rows)
    }
}

struct PromoteToMaster: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "promoteToMaster",
        abstract: "Make a slave its group's master (broker id 0) once the master is gone for good. Needs -b and the admin token.")
    @OptionGroup var target: ClusterTarget
    @Flag(help: "Promote although the master still answers (two masters take writes until it is stopped).") var force = false

    func validate() throws {
        guard target.broker != nil else { throw ValidationError("name the slave with -b host:port") }
    }

    func run() async throws {
        let rows = try await target.eachBroker { address, admin in
            let s = try await admin.promoteToMaster(.init(force: force), options: target.callOptions)
            return [address, s.role, String(s.brokerId), String(s.commitLogMaxOffset)]
        }
        target.output(["broker", "role", "id", "maxOffset"], rows)
    }
}

struct GetBrokerConfig: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "getBrokerConfig", abstract: "A broker's settings (* marks runtime-updatable keys).")
    @OptionGroup var target: ClusterTarget

    func run() async throws {
        let rows = try await target.eachBroker { address, admin in
            let config = try await admin.getBrokerConfig(.init(), options: target.callOptions)
            let updatable = Set(config.updatableKeys)
            return config.values.keys.sorted().map { [address, updatable.contains($0) ? $0 + " *" : $0, config.values[$0] ?? ""] }
        }.flatMap { $0 }
        target.output(["broker", "key", "value"], rows)
    }
}

struct UpdateBrokerConfig: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "updateBrokerConfig", abstract: "Change a runtime setting (applied at once, persisted).")
    @OptionGroup var target: ClusterTarget
    @Option(name: .customShort("k"), help: "Key.") var key: String
    @Option(name: .customShort("v"), help: "Value.") var value: String

    func run() async throws {
        let rows = try await target.eachBroker { address, admin in
            let config = try await admin.updateBrokerConfig(.init(values: [key: value]), options: target.callOptions)
            return [address, key, config.values[key] ?? ""]
        }
        target.output(["broker", "key", "value"], rows)
    }
}

struct TopicList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "topicList", abstract: "Topic names (from the NameServer, or a broker with -b).")
    @OptionGroup var target: ClusterTarget

    func run() async throws {
        let names: [String]
        if target.broker != nil {
            names = try await target.eachBroker { _, admin in
                try await admin.listTopics(.init(), options: target.callOptions).topics.map(\.name)
            }.flatMap { $0 }
        } else {
            names = try await target.withNameServer { channel in
                try await Rocketmq_Namesrv_V1_NameServer.Client(channel: channel).listTopics(.init(clusterName: target.cluster ?? ""), options: target.callOptions).topics
            }
        }
        target.output(["topic"], Set(names).sorted().map { [$0] })
    }
}

struct TopicStatus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "topicStatus", abstract: "Per-queue min/max offsets and last store time.")
    @OptionGroup var target: ClusterTarget
    @Option(name: .customShort("t"), help: "Topic.") var topic: String

    func run() async throws {
        let rows = try await target.eachBroker { address, admin in
            try await admin.describeTopic(.init(topic: topic), options: target.callOptions).queues.map {
                [address, String($0.queueId), String($0.minOffset), String($0.maxOffset), $0.lastStoreTime?.text ?? ""]
            }
        }.flatMap { $0 }
        target.output(["broker", "queue", "minOffset", "maxOffset", "lastStoreTime"], rows)
    }
}

struct TopicRoute: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "topicRoute", abstract: "The route clients get for a topic.")
    @OptionGroup var target: ClusterTarget
    @Option(name: .customShort("t"), help: "Topic.") var topic: String

    func run() async throws {
        let query = { (channel: RPCChannel) in
            try await Apache_Rocketmq_V2_MessagingService.Client(channel: channel).queryRoute(.init(topic: .init(name: topic)), options: target.callOptions)
        }
        let route: Apache_Rocketmq_V2_QueryRouteResponse
        if target.nameServer != nil {
            route = try await target.withNameServer(query)  // the first NameServer that answers
        } else {
            let channel = try ClusterTarget.channel(target.broker ?? "")
            do {
                route = try await query(channel)
            } catch {
                await channel.close()
                throw error
            }
            await channel.close()
        }
        guard route.status?.code == .ok else {
            throw VerbError("\(route.status?.code.protoName ?? "NO_STATUS"): \(route.status?.message ?? "")")
        }
        let rows = route.messageQueues.map { queue in
            [queue.broker?.name ?? "", String(queue.id), queue.permission.protoName ?? "",
             queue.broker?.endpoints?.addresses.map { "\($0.host):\($0.port)" }.joined(separator: ",") ?? "",
             queue.acceptMessageTypes.compactMap(\.protoName).joined(separator: ",")]
        }
        target.output(["broker", "queue", "permission", "endpoints", "messageTypes"], rows)
    }
}

struct UpdateTopic: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "updateTopic",
        abstract: "Create or change a topic on every target broker.",
        discussion: """
            Options left out keep the topic's current value (a new topic gets 8 read and 8 write \
            queues, read and write permission, NORMAL). Consumers read queues 0..<r, producers \
            write 0..<w; the topic has the larger number of queues. To remove queues without \
            losing messages, lower -w first, let consumers drain the queues past it, then lower \
            -r. A read count below a queue that still holds messages not consumed, or below the \
            write count, is refused, unless --force.
            """)
    @OptionGroup var target: ClusterTarget
    @Option(name: .customShort("t"), help: "Topic.") var topic: String
    @Option(name: .customShort("r"), help: "Read queue count.") var readQueues: Int32?
    @Option(name: .customShort("w"), help: "Write queue count.") var writeQueues: Int32?
    @Option(name: .customShort("p"), help: "Permission: 2 write, 4 read, 6 both.") var permission: Int32?
    @Option(name: .customLong("message-types"), help: "Comma-separated: NORMAL, FIFO, DELAY, TRANSACTION.") var messageTypes: String?
    @Flag(help: "Lower the read queue count even if a queue past it holds messages.") var force = false

    func validate() throws {
        if let permission, ![2, 4, 6].contains(permission) {
            throw ValidationError("-p \(permission): use 2 (write), 4 (read) or 6 (both)")
        }
        for count in [readQueues, writeQueues].compactMap({ $0 }) where count < 1 {
            throw ValidationError("a topic needs at least one queue, got \(count)")
        }
    }

    func run() async throws {
        let types = messageTypes.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).uppercased() } }
        let rows = try await target.eachBroker { address, admin in
            let current: Rocketmq_Admin_V1_DescribeTopicResponse?
            do {
                current = try await admin.describeTopic(.init(topic: topic), options: target.callOptions)
            } catch let error as RPCError where error.code == .notFound {
                current = nil
            }
            let now = current?.topic.map { (read: $0.readQueues, write: $0.writeQueues, all: $0.queueCount) }
            // A new topic given one count takes it for the other too (4 read queues and 8 write
            // ones would leave queues no consumer reads).
            let read = readQueues ?? now?.read ?? writeQueues ?? 8
            let write = writeQueues ?? now?.write ?? readQueues ?? 8
            if !force, read < write {
                throw VerbError("\(topic) on \(address): \(write) write queues but \(read) read queues would leave queues \(read)..<\(write) taking messages no consumer reads; lower -w as well, or --force")
            }
            // Queues past the new read count are read no more (and those past both counts go):
            // refused while they hold messages a consumer has yet to take.
            if let current, let now, read < now.read || max(read, write) < now.all, !force {
                let holding = try await undrained(current.queues, from: read, admin: admin)
                if !holding.isEmpty {
                    throw VerbError("\(topic) on \(address): queues \(holding.map(String.init).joined(separator: ", ")) still hold messages not consumed that \(read) read queues would hide; lower -w first and let the consumers drain them, or --force")
                }
            }
            // The queue count too: a broker that predates read and write counts reads only it.
            let change = Rocketmq_Admin_V1_Topic(
                name: topic, queueCount: max(read, write), permission: permission ?? current?.topic?.permission ?? 6,
                messageTypes: types ?? current?.topic?.messageTypes ?? ["NORMAL"], readQueueCount: read, writeQueueCount: write)
            let saved = try await admin.upsertTopic(.init(topic: change), options: target.callOptions)
            return [address, saved.name, String(saved.queueCount), String(saved.readQueues), String(saved.writeQueues),
                    String(saved.permission), saved.messageTypes.joined(separator: ",")]
        }
        target.output(["broker", "topic", "queues", "readQueues", "writeQueues", "permission", "messageTypes"], rows)
    }

    /// The queues from `read` on that hold messages some consumer has yet to take: by the
    /// progress of every group that consumes the topic (lag or messages in flight); when no
    /// group consumes it, any message counts.
    private func undrained(_ queues: [Rocketmq_Admin_V1_QueueStatus], from read: Int32, admin: Rocketmq_Admin_V1_Admin.Client) async throws -> [Int32] {
        let candidates = queues.filter { $0.queueId >= read && $0.maxOffset > $0.minOffset }.map(\.queueId)
        guard !candidates.isEmpty else { return [] }
        var consuming: [[Rocketmq_Admin_V1_QueueProgress]] = []
        for group in try await admin.listGroups(.init(), options: target.callOptions).groups {
            let rows = try await admin.getConsumerProgress(.init(group: group.name), options: target.callOptions).queues.filter { $0.topic == topic }
            if !rows.isEmpty { consuming.append(rows) }
        }
        guard !consuming.isEmpty else { return candidates }
        return candidates.filter { queue in
            consuming.contains { rows in rows.first { $0.queueId == queue }.map { $0.lag > 0 || $0.inFlight > 0 } ?? true }
        }
    }
}

struct DeleteTopic: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deleteTopic", abstract: "Delete a topic on every target broker.",
        discussion: "Its config goes, and its messages are no longer served: a topic created again under the name starts empty.")
    @OptionGroup var target: ClusterTarget
    @Option(name: .customShort("t"), help: "Topic.") var topic: String

    func run() async throws {
        let rows = try await target.eachBroker { address, admin in
            _ = try await admin.deleteTopic(.init(topic: topic), options: target.callOptions)
            return [address, topic, "deleted"]
        }
        target.output(["broker", "topic", "result"], rows)
    }
}

struct UpdateSubGroup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "updateSubGroup", abstract: "Create or change a consumer group.",
        discussion: "Options left out keep the group's current value (a new group: 16 attempts, not FIFO, enabled).")
    @OptionGroup var target: ClusterTarget
    @Option(name: .customShort("g"), help: "Consumer group.") var group: String
    @Option(name: .customLong("max-attempts"), help: "Deliveries before the DLQ.") var maxAttempts: Int32?
    @Flag(inversion: .prefixedNo, help: "FIFO consumption (one message in flight per message group).") var fifo: Bool?
    @Flag(help: "Refuse consumption (--disable) or take it again (--enable).") var consumption: Consumption?

    enum Consumption: EnumerableFlag {
        case enable, disable
    }

    func run() async throws {
        let rows = try await target.eachBroker { address, admin in
            let current = try await admin.listGroups(.init(), options: target.callOptions).groups.first { $0.name == group }
            let change = Rocketmq_Admin_V1_Group(
                name: group, maxDeliveryAttempts: maxAttempts ?? current?.maxDeliveryAttempts ?? 16, fifo: fifo ?? current?.fifo ?? false,
                consumeEnabled: consumption.map { $0 == .enable } ?? current?.consumeEnabled ?? true)
            let saved = try await admin.upsertGroup(.init(group: change), options: target.callOptions)
            return [address, saved.name, String(saved.maxDeliveryAttempts), String(saved.fifo), String(saved.consumeEnabled)]
        }
        target.output(["broker", "group", "maxAttempts", "fifo", "consumeEnabled"], rows)
    }
}

struct DeleteSubGroup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "deleteSubGroup", abstract: "Delete a consumer group.")
    @OptionGroup var target: ClusterTarget
    @Option(name: .customShort("g"), help: "Consumer group.") var group: String

    func run() async throws {
        let rows = try await target.eachBroker { address, admin in
            _ = try await admin.deleteGroup(.init(group: group), options: target.callOptions)
            return [address, group, "deleted"]
        }
        target.output(["broker", "group", "result"], rows)
    }
}

struct ConsumerProgress: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "consumerProgress", abstract: "Broker offset, consumer offset, lag and in-flight per queue.")
    @OptionGroup var target: ClusterTarget
    @Option(name: .customShort("g"), help: "Consumer group.") var group: String
    @Option(name: .customShort("t"), help: "Only this topic.") var topic: String?

    func run() async throws {
        let rows = try await target.eachBroker { address, admin in
            try await admin.getConsumerProgress(.init(group: group, topic: topic ?? ""), options: target.callOptions).queues.map {
                [address, $0.topic, String($0.queueId), String($0.brokerOffset), String($0.consumerOffset), String($0.lag), String($0.inFlight)]
            }
        }.flatMap { $0 }
        target.output(["broker", "topic", "queue", "brokerOffset", "consumerOffset", "lag", "inFlight"], rows)
    }
}

struct ResetOffsetByTime: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "resetOffsetByTime", abstract: "Move a group's offsets on a topic to the first message stored at or after a time.")
    @OptionGroup var target: ClusterTarget
    @Option(name: .customShort("g"), help: "Consumer group.") var group: String
    @Option(name: .customShort("t"), help: "Topic.") var topic: String
    @Option(name: .customShort("s"), help: "Milliseconds since the epoch, 'now', or an ISO 8601 time.") var time: String

    /// An ISO 8601 time, with or without fractional seconds (mqadmin prints store times to the
    /// millisecond, and messages a millisecond apart need them).
    static func iso8601(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions.insert(.withFractionalSeconds)
        return formatter.date(from: text)
    }

    func run() async throws {
        let milliseconds: Int64
        if time == "now" {
            milliseconds = Int64(Date().timeIntervalSince1970 * 1000)
        } else if let value = Int64(time) {
            milliseconds = value
        } else if let date = Self.iso8601(time) {
            milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded())
        } else {
            throw ValidationError("-s takes milliseconds since the epoch, 'now' or an ISO 8601 time, not \(time)")
        }
        let timestamp = Google_Protobuf_Timestamp(seconds: milliseconds / 1000, nanos: Int32(milliseconds % 1000) * 1_000_000)
        let rows = try await target.eachBroker { address, admin in
            try await admin.resetOffset(.init(group: group, topic: topic, target: .timestamp(timestamp)), options: target.callOptions).queues.map {
                [address, $0.topic, String($0.queueId), String($0.consumerOffset), String($0.brokerOffset)]
            }
        }.flatMap { $0 }
        target.output(["broker", "topic", "queue", "newOffset", "brokerOffset"], rows)
    }
}

/// Shared by the three message lookups: one row per message, `--json` includes the body.
enum MessageOutput {
    static func print(_ messages: [Rocketmq_Admin_V1_StoredMessage], target: ClusterTarget) {
        let rows = messages.map { m in
            [m.topic, String(m.queueId), String(m.queueOffset), m.messageId, m.storeTime?.text ?? "",
             m.properties["TAGS"] ?? "", m.properties["KEYS"] ?? "", String(decoding: m.body.prefix(200), as: UTF8.self)]
        }
        target.output(["topic", "queue", "offset", "messageId", "storeTime", "tags", "keys", "body"], rows)
    }

    static func query(_ request: Rocketmq_Admin_V1_QueryMessageRequest, target: ClusterTarget) async throws {
        let found = try await target.eachBroker(lookingFor: true) { _, admin in
            try await admin.queryMessage(request, options: target.callOptions).messages
        }.flatMap { $0 }
        guard !found.isEmpty else { throw VerbError("no message found") }
        print(found, target: target)
    }
}

struct QueryMsgById: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "queryMsgById", abstract: "Find a message by its id (producer id or offset id).")
    @OptionGroup var target: ClusterTarget
    @Option(name: .customShort("i"), help: "Message id.") var id: String

    func run() async throws {
        try await MessageOutput.query(.init(by: .messageId(id)), target: target)
    }
}

struct QueryMsgByKey: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "queryMsgByKey", abstract: "Find messages by business key.")
    @OptionGroup var target: ClusterTarget
    @Option(name: .customShort("t"), help: "Topic.") var topic: String
    @Option(name: .customShort("k"), help: "Key.") var key: String

    func run() async throws {
        try await MessageOutput.query(.init(topic: topic, maxCount: 64, by: .key(key)), target: target)
    }
}

struct QueryMsgByOffset: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "queryMsgByOffset", abstract: "The message at a queue offset.")
    @OptionGroup var target: ClusterTarget
    @Option(name: .customShort("t"), help: "Topic.") var topic: String
    @Option(name: .customShort("q"), help: "Queue id.") var queue: Int32
    @Option(name: .customShort("o"), help: "Queue offset.") var offset: Int64

    func run() async throws {
        try await MessageOutput.query(.init(topic: topic, by: .position(.init(queueId: queue, offset: offset))), target: target)
    }
}

struct QueryMsgTraceById: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queryMsgTraceById",
        abstract: "The life of a message: its stored copies and what each consumer group did with it, from the broker's consumer-progress journal.")
    @OptionGroup var target: ClusterTarget
    @Option(name: .customShort("i"), help: "Message id (producer id or offset id).") var id: String

    func run() async throws {
        let traces = try await target.eachBroker(lookingFor: true) { broker, admin in
            (broker, try await admin.getMessageTrace(.init(messageId: id), options: target.callOptions))
        }
        guard !traces.isEmpty else { throw VerbError("no message found") }
        var rows: [[String]] = []
        for (broker, trace) in traces {
            for event in trace.events {
                rows.append([event.time?.iso8601Milliseconds ?? "", broker, Self.name(event.kind), event.group, event.topic, String(event.queueId),
                             String(event.queueOffset), event.kind == .delivered ? String(event.attempt) : ""])
            }
            if trace.truncated {
                FileHandle.standardError.write(Data("mqadmin: \(broker): the journal scan stopped after \(trace.journalRecordsScanned) records; later events may be missing\n".utf8))
            }
        }
        target.output(["time", "broker", "event", "group", "topic", "queue", "offset", "attempt"], rows)
    }

    static func name(_ kind: Rocketmq_Admin_V1_TraceEvent.Kind) -> String {
        switch kind {
        case .stored: "stored"
        case .delivered: "delivered"
        case .acked: "acked"
        case .offsetPassed: "offsetPassed"
        case .offsetReset: "offsetReset"
        case .deadLettered: "deadLettered"
        default: "unknown"
        }
    }
}

struct VerbError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

struct ResendMsg: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "resendMsg", abstract: "Deliver a stored message again to one consumer group.")
    @OptionGroup var target: ClusterTarget
    @Option(name: .customShort("g"), help: "Consumer group.") var group: String
    @Option(name: .customShort("i"), help: "Message id.") var id: String

    func run() async throws {
        let rows = try await target.eachBroker(lookingFor: true) { address, admin in
            let result = try await admin.resendMessage(.init(group: group, messageId: id), options: target.callOptions)
            return [address, group, id, result.retryTopic, String(result.offset)]
        }
        guard !rows.isEmpty else { throw VerbError("no broker has message \(id) (or group \(group))") }
        target.output(["broker", "group", "messageId", "retryTopic", "offset"], rows)
    }
}

struct DLQList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dlqList", abstract: "Messages in a group's dead-letter queue.")
    @OptionGroup var target: ClusterTarget
    @Option(name: .customShort("g"), help: "Consumer group.") var group: String
    @Option(name: .customShort("o"), help: "First offset.") var offset: Int64 = 0
    @Option(help: "Most messages to show.") var max: Int32 = 32

    func run() async throws {
        let messages = try await target.eachBroker { _, admin in
            try await admin.listDeadLetters(.init(group: group, offset: offset, maxCount: max), options: target.callOptions).messages
        }.flatMap { $0 }
        MessageOutput.print(messages, target: target)
    }
}

struct DLQRedrive: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dlqRedrive", abstract: "Send a group's dead letters back to it, each once.")
    @OptionGroup var target: ClusterTarget
    @Option(name: .customShort("g"), help: "Consumer group.") var group: String
    @Option(help: "Most messages to re-drive.") var max: Int32 = 1000

    func run() async throws {
        let rows = try await target.eachBroker { address, admin in
            let result = try await admin.redriveDeadLetters(.init(group: group, maxCount: max), options: target.callOptions)
            return [address, group, String(result.redriven), String(result.remaining)]
        }
        target.output(["broker", "group", "redriven", "remaining"], rows)
    }
}
