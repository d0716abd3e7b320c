import Foundation
import RocketMQAPI
import RocketMQStore
import RocketRPC

/// `rocketmq.admin.v1.Admin` on a broker: status, runtime config, topics, groups, consumer
/// progress, offset resets and message lookup — what `mqadmin`'s verbs and the console call.
///
/// Our own API, so failures are plain gRPC statuses (NOT_FOUND, INVALID_ARGUMENT,
/// UNAUTHENTICATED). Calls that change state need `authorization: Bearer <token>` when the
/// broker has an admin token.
public struct AdminServiceProvider: Rocketmq_Admin_V1_Admin.ServiceProtocol {
    let broker: Broker

    public init(broker: Broker) {
        self.broker = broker
    }

    /// Refuses a state-changing call without the broker's admin credential, and (unless
    /// `onSlave`) on a slave, whose topics, groups and progress are its master's copy.
    private func authorize(_ context: ServerContext, onSlave: Bool = false) throws(RPCError) {
        guard broker.presentsAdminCredential(context) else {
            throw RPCError(code: .unauthenticated, message: "this admin call changes the broker: send `authorization: Bearer <admin token>`")
        }
        if !onSlave, broker.isSlave {
            throw RPCError(code: .failedPrecondition, message: "this broker is a slave: change its master (broker id 0) instead")
        }
    }

    /// Runs `body`, turning broker errors into gRPC statuses.
    private func run<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as RPCError {
            throw error
        } catch let error as BrokerError {
            switch error.status.code {
            case .topicNotFound, .consumerGroupNotFound, .notFound, .messageNotFound:
                throw RPCError(code: .notFound, message: error.description)
            case .preconditionFailed:
                throw RPCError(code: .failedPrecondition, message: error.description)
            default:
                throw RPCError(code: .invalidArgument, message: error.description)
            }
        }
    }

    // MARK: Broker

    public func getBrokerStatus(request: Rocketmq_Admin_V1_GetBrokerStatusRequest, context: ServerContext) async throws -> Rocketmq_Admin_V1_BrokerStatus {
        let configuration = broker.configuration
        return Rocketmq_Admin_V1_BrokerStatus(
            clusterName: configuration.clusterName, brokerName: configuration.brokerName, brokerId: configuration.brokerId,
            address: broker.routeAddress, nameServers: configuration.nameServers,
            startedAt: .init(date: broker.startedAt),
            commitLogMinOffset: broker.store.commitLogMinOffset, commitLogMaxOffset: broker.store.commitLogMaxOffset,
            commitLogFlushedOffset: broker.store.commitLogFlushedOffset,
            topicCount: Int32(broker.topics.all.count), groupCount: Int32(broker.groups.all.count),
            clientCount: Int32(broker.clients.all.count), flushMode: configuration.store.flushMode.rawValue,
            openTransactions: Int32(clamping: broker.openTransactions), pendingDelayMessages: Int64(broker.pendingDelayMessages))
    }

    public func getBrokerConfig(request: Rocketmq_Admin_V1_GetBrokerConfigRequest, context: ServerContext) async throws -> Rocketmq_Admin_V1_BrokerConfig {
        Rocketmq_Admin_V1_BrokerConfig(values: RuntimeConfig.values(of: broker.configuration), updatableKeys: RuntimeConfig.updatableKeys)
    }

    public func updateBrokerConfig(request: Rocketmq_Admin_V1_UpdateBrokerConfigRequest, context: ServerContext) async throws -> Rocketmq_Admin_V1_BrokerConfig {
        try authorize(context, onSlave: true)
        return try await run {
            try broker.updateConfiguration(request.values)
            return Rocketmq_Admin_V1_BrokerConfig(values: RuntimeConfig.values(of: broker.configuration), updatableKeys: RuntimeConfig.updatableKeys)
        }
    }

    // MARK: Replication

    public func getReplicationStatus(request: Rocketmq_Admin_V1_GetReplicationStatusRequest, context: ServerContext) async throws -> Rocketmq_Admin_V1_ReplicationStatus {
        Self.status(broker.replicationStatus)
    }

    public func promoteToMaster(request: Rocketmq_Admin_V1_PromoteToMasterRequest, context: ServerContext) async throws -> Rocketmq_Admin_V1_ReplicationStatus {
        try authorize(context, onSlave: true)
        guard broker.isSlave else { throw RPCError(code: .failedPrecondition, message: "this broker is already a master") }
        do {
            try await broker.promoteToMaster(force: request.force)
        } catch let error as BrokerError where error.status.code == .preconditionFailed || error.status.code == .badRequest {
            throw RPCError(code: .failedPrecondition, message: error.description)
        } catch {
            throw RPCError(code: .internalError, message: "promotion failed: \(error)")
        }
        return Self.status(broker.replicationStatus)
    }

    static func status(_ status: ReplicationStatus) -> Rocketmq_Admin_V1_ReplicationStatus {
        func timestamp(_ date: Date) -> Google_Protobuf_Timestamp { .init(date: date) }
        return Rocketmq_Admin_V1_ReplicationStatus(
            role: status.role.rawValue, brokerId: status.brokerId, commitLogMaxOffset: status.commitLogMaxOffset,
            replicas: status.replicas.map { replica in
                Rocketmq_Admin_V1_ReplicaInfo(
                    address: replica.address, brokerId: replica.brokerId, acknowledgedOffset: replica.acknowledgedOffset,
                    lagBytes: replica.lagBytes, connectedAt: timestamp(replica.connectedAt),
                    lastAcknowledgedAt: replica.lastAcknowledgedAt.map(timestamp))
            },
            masterAddress: status.masterAddress, connected: status.connected, masterOffset: status.masterOffset,
            lagBytes: status.lagBytes, lastError: status.lastError, failover: status.failover, writesRefused: status.writesRefused)
    }

    // MARK: Topics

    public func listTopics(request: Rocketmq_Admin_V1_ListTopicsRequest, context: ServerContext) async throws -> Rocketmq_Admin_V1_ListTopicsResponse {
        Rocketmq_Admin_V1_ListTopicsResponse(topics: broker.topics.all.map(\.admin))
    }

    public func describeTopic(request: Rocketmq_Admin_V1_DescribeTopicRequest, context: ServerContext) async throws -> Rocketmq_Admin_V1_DescribeTopicResponse {
        try await run {
            guard let topic = broker.topics[request.topic] else { throw BrokerError.topicNotFound(request.topic) }
            let store = broker.store
            let queues = (0..<topic.queueCount).map { queueId -> Rocketmq_Admin_V1_QueueStatus in
                let max = store.maxOffset(topic: topic.name, queueId: queueId)
                let last = max > 0 ? (try? store.messages(topic: topic.name, queueId: queueId, from: max - 1, maxCount: 1))?.messages.first : nil
                return Rocketmq_Admin_V1_QueueStatus(
                    queueId: queueId, minOffset: store.minOffset(topic: topic.name, queueId: queueId), maxOffset: max,
                    lastStoreTime: last.map { .init(milliseconds: $0.storeTimestamp) })
            }
            return Rocketmq_Admin_V1_DescribeTopicResponse(topic: topic.admin, queues: queues)
        }
    }

    public func upsertTopic(request: Rocketmq_Admin_V1_UpsertTopicRequest, context: ServerContext) async throws -> Rocketmq_Admin_V1_Topic {
        try authorize(context)
        return try await run {
            guard let topic = request.topic else { throw BrokerError.badRequest("UpsertTopic needs a topic") }
            let types = topic.messageTypes.isEmpty ? ["NORMAL"] : topic.messageTypes.map { $0.uppercased() }
            for type in types where Apache_Rocketmq_V2_MessageType(protoName: type) == nil || type == "MESSAGE_TYPE_UNSPECIFIED" {
                throw BrokerError.badRequest("unknown message type \(type): use NORMAL, FIFO, DELAY or TRANSACTION")
            }
            let permission = topic.permission == 0 ? TopicConfig.Permission.readWrite : TopicConfig.Permission(rawValue: topic.permission)
            guard TopicConfig.Permission.readWrite.isSuperset(of: permission) else {
                throw BrokerError.badRequest("permission \(topic.permission) is not a combination of 2 (write) and 4 (read)")
            }
            // Read and write counts (0: not given) default to the queue count, or to each other;
            // the queue count, when given too, must be the larger of them.
            let given = topic.queueCount == 0 ? nil : topic.queueCount
            let read = topic.readQueueCount == 0 ? nil : topic.readQueueCount
            let write = topic.writeQueueCount == 0 ? nil : topic.writeQueueCount
            let readQueues = read ?? given ?? write ?? 8
            let writeQueues = write ?? given ?? read ?? 8
            if let given, given != max(readQueues, writeQueues) {
                throw BrokerError.badRequest("queue_count \(given) must be the larger of the read (\(readQueues)) and write (\(writeQueues)) queue counts, or left out")
            }
            let config = TopicConfig(name: topic.name, readQueues: readQueues, writeQueues: writeQueues, permission: permission, messageTypes: types)
            try broker.upsertTopic(config)
            return config.admin
        }
    }

    public func deleteTopic(request: Rocketmq_Admin_V1_DeleteTopicRequest, context: ServerContext) async throws -> Rocketmq_Admin_V1_Empty {
        try authorize(context)
        return try await run {
            guard broker.topics[request.topic] != nil else { throw BrokerError.topicNotFound(request.topic) }
            try broker.deleteTopic(request.topic)
            return Rocketmq_Admin_V1_Empty()
        }
    }

    // MARK: Groups

    public func listGroups(request: Rocketmq_Admin_V1_ListGroupsRequest, context: ServerContext) async throws -> Rocketmq_Admin_V1_ListGroupsResponse {
        Rocketmq_Admin_V1_ListGroupsResponse(groups: broker.groups.all.map(\.admin))
    }

    public func upsertGroup(request: Rocketmq_Admin_V1_UpsertGroupRequest, context: ServerContext) async throws -> Rocketmq_Admin_V1_Group {
        try authorize(context)
        return try await run {
            guard let group = request.group else { throw BrokerError.badRequest("UpsertGroup needs a group") }
            let attempts = group.maxDeliveryAttempts == 0 ? broker.configuration.defaultMaxDeliveryAttempts : group.maxDeliveryAttempts
            guard attempts > 0 else { throw BrokerError.badRequest("max delivery attempts must be positive") }
            let config = GroupConfig(name: group.name, maxDeliveryAttempts: attempts, fifo: group.fifo, consumeEnabled: group.consumeEnabled)
            try broker.upsertGroup(config)
            return config.admin
        }
    }

    public func deleteGroup(request: Rocketmq_Admin_V1_DeleteGroupRequest, context: ServerContext) async throws -> Rocketmq_Admin_V1_Empty {
        try authorize(context)
        return try await run {
            guard try broker.groups.remove(request.group) else { throw BrokerError.groupNotFound(request.group) }
            return Rocketmq_Admin_V1_Empty()
        }
    }

    // MARK: Consumer progress and offsets

    public func getConsumerProgress(request: Rocketmq_Admin_V1_GetConsumerProgressRequest, context: ServerContext) async throws -> Rocketmq_Admin_V1_GetConsumerProgressResponse {
        try await run {
            guard broker.groups[request.group] != nil else { throw BrokerError.groupNotFound(request.group) }
            let topics = request.topic.isEmpty ? broker.topics.all : [try broker.topic(named: request.topic)]
            // Topics the group's live consumers subscribe to count before any message was taken.
            let subscribed = broker.clients.subscribedTopics(group: request.group, within: .seconds(60))
            var queues: [Rocketmq_Admin_V1_QueueProgress] = []
            for topic in topics where !SystemTopic.isSystem(topic.name) {
                // The group's own retry topic (resent and re-driven messages) always counts,
                // read from or not, and so do the topics its consumers subscribe to.
                let own = topic.name == SystemTopic.retry(group: request.group) || subscribed.contains(topic.name)
                var rows: [Rocketmq_Admin_V1_QueueProgress] = []
                for queueId in 0..<topic.queueCount {
                    rows.append(await progress(group: request.group, topic: topic.name, queueId: queueId, onlyIfConsumed: request.topic.isEmpty && !own))
                }
                // Without a topic asked for, the topics the group consumes are those it has
                // progress in; every queue of such a topic counts, those it has not read from
                // yet from their start (their messages are lag too).
                if rows.contains(where: { $0.consumerOffset >= 0 }) {
                    for index in rows.indices where rows[index].consumerOffset < 0 {
                        rows[index] = await progress(group: request.group, topic: topic.name, queueId: Int32(index), onlyIfConsumed: false)
                    }
                }
                queues += rows
            }
            queues.removeAll { $0.consumerOffset < 0 }
            return Rocketmq_Admin_V1_GetConsumerProgressResponse(group: request.group, queues: queues, totalLag: queues.reduce(0) { $0 + $1.lag })
        }
    }

    /// One queue's progress; a consumer offset of -1 marks a queue the group never consumed (when only those count).
    private func progress(group: String, topic: String, queueId: Int32, onlyIfConsumed: Bool) async -> Rocketmq_Admin_V1_QueueProgress {
        let consumed = await broker.consumption.consumerOffset(group: group, topic: topic, queueId: queueId)
        let standing = broker.standing(topic: topic, queueId: queueId, committed: consumed)
        let inFlight = await broker.consumption.inFlightCount(group: group, topic: topic, queueId: queueId)
        let counted = consumed != nil || !onlyIfConsumed
        return Rocketmq_Admin_V1_QueueProgress(
            topic: topic, queueId: queueId, brokerOffset: standing.brokerOffset, consumerOffset: counted ? standing.consumerOffset : -1,
            lag: counted ? standing.lag : 0, inFlight: Int32(inFlight))
    }

    public func resetOffset(request: Rocketmq_Admin_V1_ResetOffsetRequest, context: ServerContext) async throws -> Rocketmq_Admin_V1_ResetOffsetResponse {
        try authorize(context)
        return try await run {
            // They append to the log: a master holding its writes at start answers them after.
            try await broker.waitForWriteHold()
            guard broker.groups[request.group] != nil else { throw BrokerError.groupNotFound(request.group) }
            guard let topic = broker.topics[request.topic] else { throw BrokerError.topicNotFound(request.topic) }
            let store = broker.store
            var queues: [Rocketmq_Admin_V1_QueueProgress] = []
            for queueId in 0..<topic.queueCount {
                let low = store.minOffset(topic: topic.name, queueId: queueId)
                let high = store.maxOffset(topic: topic.name, queueId: queueId)
                let target: Int64
                switch request.target {
                case .timestamp(let time)?: target = try store.queueOffset(topic: topic.name, queueId: queueId, forTimestamp: time.milliseconds)
                case .offset(let offset)?: target = Swift.min(Swift.max(offset, low), high)
                case nil: throw BrokerError.badRequest("ResetOffset needs a timestamp or an offset")
                }
                try await broker.consumption.setConsumerOffset(group: request.group, topic: topic.name, queueId: queueId, offset: target)
                queues.append(await progress(group: request.group, topic: topic.name, queueId: queueId, onlyIfConsumed: false))
            }
            return Rocketmq_Admin_V1_ResetOffsetResponse(queues: queues)
        }
    }

    // MARK: Messages

    public func queryMessage(request: Rocketmq_Admin_V1_QueryMessageRequest, context: ServerContext) async throws -> Rocketmq_Admin_V1_QueryMessageResponse {
        try await run {
            let store = broker.store
            let limit = Int(request.maxCount <= 0 ? 32 : Swift.min(request.maxCount, 1000))
            var found: [StoredMessage] = []
            switch request.by {
            case .messageId(let id)?:
                // Every stored copy (the original, and those a group's retry or dead-letter
                // topic got, which keep its id), oldest first; else the record an offset id names.
                found = store.messages(uniqueId: id, maxCount: limit).sorted { $0.physicalOffset < $1.physicalOffset }
                if found.isEmpty, let message = try? store.message(msgId: id) {
                    found = [message]
                }
            case .key(let key)?:
                guard !request.topic.isEmpty else { throw BrokerError.badRequest("a key lookup needs a topic") }
                found = store.messages(key: key, topic: request.topic, maxCount: limit)
            case .position(let position)?:
                guard !request.topic.isEmpty else { throw BrokerError.badRequest("an offset lookup needs a topic") }
                found = try store.messages(topic: request.topic, queueId: position.queueId, from: position.offset, maxCount: 1)
                    .messages.filter { $0.queueOffset == position.offset }
            case nil:
                throw BrokerError.badRequest("QueryMessage needs a message id, a key or a queue position")
            }
            guard !found.isEmpty else { throw RPCError(code: .notFound, message: "no stored message matches \(request.by.map { "\($0)" } ?? "the query")") }
            return Rocketmq_Admin_V1_QueryMessageResponse(messages: found.map(\.admin))
        }
    }
}

extension AdminServiceProvider {
    // MARK: Message trace

    public func getMessageTrace(request: Rocketmq_Admin_V1_GetMessageTraceRequest, context: ServerContext) async throws -> Rocketmq_Admin_V1_MessageTrace {
        try await run {
            guard !request.messageId.isEmpty else { throw BrokerError.badRequest("GetMessageTrace needs a message id") }
            // Up to 100,000 journal reads: on a GCD thread, not one of the few the broker's
            // request handlers share.
            let broker = self.broker
            let id = request.messageId
            let outcome = await withCheckedContinuation { (continuation: CheckedContinuation<Result<MessageTrace?, BrokerError>, Never>) in
                DispatchQueue.global(qos: .utility).async {
                    continuation.resume(returning: Result { () throws(BrokerError) in try broker.trace(messageId: id) })
                }
            }
            guard let trace = try outcome.get() else {
                throw RPCError(code: .notFound, message: "no stored message has id \(request.messageId)")
            }
            return Rocketmq_Admin_V1_MessageTrace(
                messageId: trace.copies.first?.messageId ?? request.messageId,
                copies: trace.copies.map { copy in
                    var admin = copy.admin
                    admin.body = []
                    return admin
                },
                events: trace.events.map(\.admin),
                journalRecordsScanned: Int64(trace.journalRecordsScanned), truncated: trace.truncated)
        }
    }
}

extension MessageTrace.Event {
    var admin: Rocketmq_Admin_V1_TraceEvent {
        let kind: Rocketmq_Admin_V1_TraceEvent.Kind = switch self.kind {
        case .stored: .stored
        case .delivered: .delivered
        case .acked: .acked
        case .offsetPassed: .offsetPassed
        case .offsetReset: .offsetReset
        case .deadLettered: .deadLettered
        }
        return Rocketmq_Admin_V1_TraceEvent(
            time: .init(milliseconds: time), kind: kind, group: group ?? "", topic: topic, queueId: queueId, queueOffset: queueOffset, attempt: attempt)
    }
}

extension AdminServiceProvider {
    // MARK: Resend and dead letters

    public func resendMessage(request: Rocketmq_Admin_V1_ResendMessageRequest, context: ServerContext) async throws -> Rocketmq_Admin_V1_ResendMessageResponse {
        try authorize(context)
        return try await run {
            // They append to the log: a master holding its writes at start answers them after.
            try await broker.waitForWriteHold()
            guard broker.groups[request.group] != nil else { throw BrokerError.groupNotFound(request.group) }
            let store = broker.store
            guard let message = store.message(uniqueId: request.messageId) ?? (try? store.message(msgId: request.messageId)) else {
                throw RPCError(code: .notFound, message: "no stored message has id \(request.messageId)")
            }
            let origin = message.properties[StoredProperty.retryOriginTopic]
                ?? message.properties[StoredProperty.deadLetterOriginTopic] ?? message.topic
            let result = try await broker.redeliver(message, to: request.group, originTopic: origin)
            return Rocketmq_Admin_V1_ResendMessageResponse(retryTopic: SystemTopic.retry(group: request.group), offset: result.queueOffset)
        }
    }

    /// Dead letters are re-driven in order; the position is the consumer offset of a
    /// broker-internal group named after the group (`%REDRIVE%<group>`), journaled like any other.
    static func redriveGroup(_ group: String) -> String { "%REDRIVE%" + group }

    public func listDeadLetters(request: Rocketmq_Admin_V1_ListDeadLettersRequest, context: ServerContext) async throws -> Rocketmq_Admin_V1_ListDeadLettersResponse {
        try await run {
            let dlq = SystemTopic.deadLetter(group: request.group)
            let store = broker.store
            let limit = Int(request.maxCount <= 0 ? 32 : min(request.maxCount, 1000))
            let page = try store.messages(topic: dlq, queueId: 0, from: request.offset, maxCount: limit)
            let redriven = await broker.consumption.consumerOffset(group: Self.redriveGroup(request.group), topic: dlq, queueId: 0)
                ?? store.minOffset(topic: dlq, queueId: 0)
            return Rocketmq_Admin_V1_ListDeadLettersResponse(
                messages: page.messages.map(\.admin), nextOffset: page.nextOffset,
                pending: max(0, store.maxOffset(topic: dlq, queueId: 0) - redriven))
        }
    }

    public func redriveDeadLetters(request: Rocketmq_Admin_V1_RedriveDeadLettersRequest, context: ServerContext) async throws -> Rocketmq_Admin_V1_RedriveDeadLettersResponse {
        try authorize(context)
        return try await run {
            // They append to the log: a master holding its writes at start answers them after.
            try await broker.waitForWriteHold()
            guard broker.groups[request.group] != nil else { throw BrokerError.groupNotFound(request.group) }
            let dlq = SystemTopic.deadLetter(group: request.group)
            let store = broker.store
            let cursorGroup = Self.redriveGroup(request.group)
            var offset = await broker.consumption.consumerOffset(group: cursorGroup, topic: dlq, queueId: 0)
                ?? store.minOffset(topic: dlq, queueId: 0)
            let limit = Int(request.maxCount <= 0 ? 1000 : request.maxCount)
            var redriven: Int32 = 0
            while redriven < limit {
                let page = try store.messages(topic: dlq, queueId: 0, from: offset, maxCount: min(64, limit - Int(redriven)))
                if page.messages.isEmpty { break }
                for message in page.messages {
                    let origin = message.properties[StoredProperty.deadLetterOriginTopic] ?? message.topic
                    _ = try await broker.redeliver(message, to: request.group, originTopic: origin)
                    redriven += 1
                    offset = message.queueOffset + 1
                    // Each one once, even if a later one fails.
                    try await broker.consumption.setConsumerOffset(group: cursorGroup, topic: dlq, queueId: 0, offset: offset)
                }
            }
            return Rocketmq_Admin_V1_RedriveDeadLettersResponse(
                redriven: redriven, remaining: max(0, store.maxOffset(topic: dlq, queueId: 0) - offset))
        }
    }
}

extension TopicConfig {
    var admin: Rocketmq_Admin_V1_Topic {
        Rocketmq_Admin_V1_Topic(
            name: name, queueCount: queueCount, permission: permission.rawValue, messageTypes: messageTypes,
            readQueueCount: readQueues, writeQueueCount: writeQueues)
    }
}

extension GroupConfig {
    var admin: Rocketmq_Admin_V1_Group {
        Rocketmq_Admin_V1_Group(name: name, maxDeliveryAttempts: maxDeliveryAttempts, fifo: fifo, consumeEnabled: consumeEnabled)
    }
}

extension StoredMessage {
    var admin: Rocketmq_Admin_V1_StoredMessage {
        Rocketmq_Admin_V1_StoredMessage(
            topic: topic, queueId: queueId, queueOffset: queueOffset, physicalOffset: physicalOffset,
            messageId: messageId, offsetMessageId: msgId, properties: properties, body: body,
            bornTime: .init(milliseconds: bornTimestamp), storeTime: .init(milliseconds: storeTimestamp),
            bornHost: bornHost, storeHost: storeHost)
    }
}
