import Foundation
import Synchronization

/// Offset-based consumption for broadcasting: every `PullConsumer` instance gets every message
/// of its topic, whatever its group.
///
/// **Where positions live.** Each instance keeps its own next offset per queue, locally: in
/// memory, and in `offsetFile` when one is given (JSON, replaced atomically after each pull
/// that moved a position), so a restarted instance resumes where it stopped. The broker's
/// `UpdateOffset` is not used: it stores one offset per consumer group and queue, which all
/// instances of a group would share — the opposite of broadcasting. A queue without a saved
/// position starts at ``PullStartPosition``; ``seek(toTimestamp:)`` and
/// ``seek(toOffset:in:)`` move positions explicitly.
///
/// A pulled message is considered consumed: positions advance when ``pull(maxMessages:awaitDuration:)``
/// returns (at-most-once per instance across crashes).
public final class PullConsumer: Sendable {
    let session: ClientSession
    /// The group sent with pulls (the broker requires one; it keeps no position for it).
    public let group: String
    /// The topic consumed.
    public let topic: String
    /// The filter the broker applies: a tag expression or a SQL92 condition.
    public let filter: FilterExpression
    let startPosition: PullStartPosition
    let positions: PositionStore
    // A lock, not an actor: it only rotates the queue pulls start from.
    private let cursor = Mutex<Int>(0)

    private init(session: ClientSession, group: String, topic: String, filter: FilterExpression, start: PullStartPosition, positions: PositionStore) {
        self.session = session
        self.group = group
        self.topic = topic
        self.filter = filter
        self.startPosition = start
        self.positions = positions
    }

    /// Starts a consumer of `topic` and fixes its position on every queue that has none saved.
    public static func start(
        configuration: ClientConfiguration, group: String, topic: String, filter: FilterExpression = .all,
        startFrom: PullStartPosition = .end, offsetFile: URL? = nil
    ) async throws(RocketMQError) -> PullConsumer {
        guard !group.isEmpty, !topic.isEmpty else { throw .invalidArgument("a pull consumer needs a group and a topic") }
        let session = ClientSession(
            configuration: configuration,
            role: ClientRole(clientType: .pullConsumer, group: group, subscriptions: [topic: filter]))
        do {
            let positions = try PositionStore(file: offsetFile)
            try await session.start(topics: [topic])
            let consumer = PullConsumer(session: session, group: group, topic: topic, filter: filter, start: startFrom, positions: positions)
            for queue in try await consumer.readableQueues() {
                let id = consumer.id(of: queue)
                if await positions.offset(of: id) == nil {
                    try await positions.set(try await consumer.queryOffset(queue, policy: startFrom == .beginning ? .beginning : .end), of: id)
                }
            }
            return consumer
        } catch {
            await session.shutdown()
            throw error
        }
    }

    /// The topic's readable queues.
    public func queues() async throws(RocketMQError) -> [MessageQueueID] {
        try await readableQueues().map(id(of:))
    }

    /// The next offset this instance will pull from `queue`.
    public func position(of queue: MessageQueueID) async -> Int64? {
        await positions.offset(of: queue)
    }

    /// Pulls up to `maxMessages` from the queues in turn; when none has anything, long-polls all
    /// of them for up to `awaitDuration`. Advances the positions past what it returns (a long
    /// poll that finds messages on several queues at once may return more than `maxMessages`).
    public func pull(maxMessages: Int = 32, awaitDuration: Duration = .seconds(1)) async throws(RocketMQError) -> [ReceivedMessage] {
        try session.ensureOpen()
        guard (1...32).contains(maxMessages) else { throw .invalidArgument("maxMessages \(maxMessages) is outside 1...32") }
        let queues = try await readableQueues()
        guard !queues.isEmpty else { throw .noQueue(topic: topic, reason: "no readable queue in its route") }
        let start = cursor.withLock { next in
            defer { next &+= 1 }
            return next
        }
        var pulled: [ReceivedMessage] = []
        var firstError: RocketMQError?
        for step in 0..<queues.count where pulled.count < maxMessages {
            let queue = queues[(start + step) % queues.count]
            // A queue's position moves as soon as it answers: what earlier queues answered must
            // be returned even if a later one fails (a broker down, a call that timed out).
            do throws(RocketMQError) {
                pulled += try await pull(queue, batchSize: maxMessages - pulled.count, wait: .zero)
            } catch {
                if error == .cancelled || error == .shutDown { firstError = error; break }
                session.logger.info("pull failed on a queue; trying the others", metadata: ["queue": "\(id(of: queue))", "error": "\(error)"])
                firstError = firstError ?? error
            }
        }
        if !pulled.isEmpty { return pulled }
        if let firstError, firstError == .cancelled || firstError == .shutDown { throw firstError }
        if awaitDuration > .zero { return try await longPoll(queues, batchSize: maxMessages, wait: awaitDuration) }
        if let firstError { throw firstError }
        return pulled
    }

    /// Long-polls every queue at once and returns when the first has messages. Pulls have no
    /// server-side effect, so cancelling the others is free; any that finished anyway moved
    /// their position, so their messages are returned too.
    private func longPoll(_ queues: [Apache_Rocketmq_V2_MessageQueue], batchSize: Int, wait: Duration) async throws(RocketMQError) -> [ReceivedMessage] {
        let outcomes = await withTaskGroup(of: Result<[ReceivedMessage], RocketMQError>.self) { group in
            for queue in queues {
                group.addTask {
                    do throws(RocketMQError) {
                        return .success(try await self.pull(queue, batchSize: batchSize, wait: wait))
                    } catch {
                        return .failure(error)
                    }
                }
            }
            var outcomes: [Result<[ReceivedMessage], RocketMQError>] = []
            while let outcome = await group.next() {
                outcomes.append(outcome)
                if case .success(let messages) = outcome, !messages.isEmpty { group.cancelAll() }
            }
            return outcomes
        }
        var pulled: [ReceivedMessage] = []
        var firstError: RocketMQError?
        for outcome in outcomes {
            switch outcome {
            case .success(let messages): pulled += messages
            case .failure(let error) where error != .cancelled && firstError == nil: firstError = error
            case .failure: break
            }
        }
        if pulled.isEmpty, let firstError { throw firstError }
        return pulled
    }

    /// Moves every queue's position to the first message stored at or after `date`.
    public func seek(toTimestamp date: Date) async throws(RocketMQError) {
        for queue in try await readableQueues() {
            var request = Apache_Rocketmq_V2_QueryOffsetRequest()
            request.messageQueue = queue
            request.queryOffsetPolicy = .timestamp
            request.timestamp = Google_Protobuf_Timestamp(date: date)
            try await positions.set(try await queryOffset(request, queue: queue), of: id(of: queue))
        }
    }

    /// Moves the position on `queue` to `offset`.
    public func seek(toOffset offset: Int64, in queue: MessageQueueID) async throws(RocketMQError) {
        guard offset >= 0 else { throw .invalidArgument("offset \(offset) is negative") }
        try await positions.set(offset, of: queue)
    }

    /// Ends Telemetry and tells the brokers the consumer left. Positions are already saved.
    public func shutdown() async {
        await session.shutdown()
    }

    // MARK: Internals

    private func readableQueues() async throws(RocketMQError) -> [Apache_Rocketmq_V2_MessageQueue] {
        try await session.route(for: topic).readableQueues.sorted { ($0.brokerName, $0.id) < ($1.brokerName, $1.id) }
    }

    private func id(of queue: Apache_Rocketmq_V2_MessageQueue) -> MessageQueueID {
        MessageQueueID(topic: topic, brokerName: queue.brokerName, queueId: queue.id)
    }

    private func queryOffset(_ queue: Apache_Rocketmq_V2_MessageQueue, policy: Apache_Rocketmq_V2_QueryOffsetPolicy) async throws(RocketMQError) -> Int64 {
        var request = Apache_Rocketmq_V2_QueryOffsetRequest()
        request.messageQueue = queue
        request.queryOffsetPolicy = policy
        return try await queryOffset(request, queue: queue)
    }

    private func queryOffset(_ request: Apache_Rocketmq_V2_QueryOffsetRequest, queue: Apache_Rocketmq_V2_MessageQueue) async throws(RocketMQError) -> Int64 {
        guard let endpoint = queue.endpoint else { throw .noQueue(topic: topic, reason: "the queue has no address") }
        let response = try await session.call(endpoint) { [request] client, options in try await client.queryOffset(request, options: options) }
        try RocketMQError.check(response.status)
        return response.offset
    }

    private func pull(_ queue: Apache_Rocketmq_V2_MessageQueue, batchSize: Int, wait: Duration) async throws(RocketMQError) -> [ReceivedMessage] {
        guard let endpoint = queue.endpoint else { throw .noQueue(topic: topic, reason: "the queue has no address") }
        let id = id(of: queue)
        let offset: Int64
        if let saved = await positions.offset(of: id) {
            offset = saved
        } else {
            offset = try await queryOffset(queue, policy: startPosition == .beginning ? .beginning : .end)
        }
        var request = Apache_Rocketmq_V2_PullMessageRequest()
        request.group = session.resource(group)
        request.messageQueue = queue
        request.offset = offset
        request.batchSize = Int32(batchSize)
        request.filterExpression = filter.proto
        request.longPollingTimeout = Google_Protobuf_Duration(wait)
        let (status, messages, nextOffset) = try await session.call(endpoint, timeout: session.configuration.requestTimeout + wait) { [request] client, options in
            try await client.pullMessage(request, options: options) { responses in
                var status: Apache_Rocketmq_V2_Status?
                var messages: [Apache_Rocketmq_V2_Message] = []
                var nextOffset: Int64?
                for try await response in responses {
                    switch response.content {
                    case .status(let value)?: status = value
                    case .message(let message)?: messages.append(message)
                    case .nextOffset(let value)?: nextOffset = value
                    case nil: break
                    }
                }
                return (status, messages, nextOffset)
            }
        }
        if status?.code == .illegalOffset {
            // The position fell outside what the broker stores (retention, a wiped broker): restart at the end.
            try await positions.set(try await queryOffset(queue, policy: .end), of: id)
            return []
        }
        if status?.code != .messageNotFound { try RocketMQError.check(status) }
        let (received, undecodable) = ReceivedMessage.decoding(messages, queue: queue, endpoint: endpoint)
        // A body that cannot be decoded can never be read: the position moves past it rather
        // than stopping the queue for good.
        for (message, error) in undecodable {
            session.logger.error("skipping a message whose body cannot be decoded", metadata: [
                "queue": "\(id)", "message-id": "\(message.systemProperties?.messageId ?? "")",
                "offset": "\(message.systemProperties?.queueOffset ?? -1)", "error": "\(error)"])
        }
        if let nextOffset { try await positions.set(nextOffset, of: id) }
        return received
    }
}
