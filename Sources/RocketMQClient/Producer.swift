import Foundation
import Synchronization

/// Sends messages: synchronously (``send(_:)-(Message)``), fire-and-continue (``sendAsync(_:completion:)``),
/// one-way (``sendOneway(_:)``) and in batches (``send(_:)-([Message])``).
///
/// Queue selection is round-robin over the topic's writable queues; a message with a
/// ``Message/messageGroup`` always goes to the queue its group hashes to (FIFO). A send that fails
/// with a retryable error is retried — up to ``ProducerOptions/maxAttempts`` times in all, whatever
/// `max_attempts` the server's settings name (as in the official clients) — on another broker when there is one, and the failing broker is
/// isolated for ``ProducerOptions/isolationWindow``.
///
/// Thread-safe; share one producer. Call ``shutdown()`` when done: it waits for one-way and
/// async sends still in flight.
public final class Producer: Sendable {
    let session: ClientSession
    /// The options the producer was started with.
    public let options: ProducerOptions
    // A lock, not an actor: queue selection must not suspend between route lookup and send.
    private let roundRobin = Mutex<Int>(Int.random(in: 0..<1024))
    private let inFlight = InFlightTasks()
    private static let hostName = ProcessInfo.processInfo.hostName

    private init(session: ClientSession, options: ProducerOptions) {
        self.session = session
        self.options = options
    }

    /// Starts a producer: fetches the routes of `topics` (more can be used later), opens Telemetry
    /// to their brokers and waits for the server's settings.
    public static func start(
        configuration: ClientConfiguration, topics: [String] = [], options: ProducerOptions = ProducerOptions()
    ) async throws(RocketMQError) -> Producer {
        let session = ClientSession(configuration: configuration, role: ClientRole(clientType: .producer, topics: topics, maxSendAttempts: max(1, options.maxAttempts)))
        if let checker = options.transactionChecker { await session.setTransactionChecker(checker) }
        do {
            try await session.start(topics: topics)
        } catch {
            await session.shutdown()
            throw error
        }
        return Producer(session: session, options: options)
    }

    /// The client id this producer sends as `x-mq-client-id`.
    public var clientId: String { session.clientId }

    /// The route of `topic` as this producer sees it (cached unless `refresh`).
    public func route(of topic: String, refresh: Bool = false) async throws(RocketMQError) -> TopicRoute {
        try await session.route(for: topic, refresh: refresh)
    }

    /// Recalls a delay message before it is due, so that no consumer gets it: `recallHandle` is
    /// its receipt's ``SendReceipt/recallHandle``. Sent to the configured endpoints, as the
    /// official clients do (a NameServer forwards it to the broker that holds the message).
    /// Returns the message's id.
    /// - Throws: the broker's status: `NOT_FOUND` once the message is due (it may have
    ///   been delivered), `BAD_REQUEST` for a handle no broker issued.
    public func recall(topic: String, recallHandle: String) async throws(RocketMQError) -> String {
        try session.ensureOpen()
        var request = Apache_Rocketmq_V2_RecallMessageRequest()
        request.topic = session.resource(topic)
        request.recallHandle = recallHandle
        return try await session.firstAnswer(
            noEndpoint: .status(code: .internalError, message: "no endpoint is configured"),
            { [request] client, options in try await client.recallMessage(request, options: options) }, status: \.status
        ).messageId
    }

    /// Sends one message and waits for the broker's receipt.
    public func send(_ message: Message) async throws(RocketMQError) -> SendReceipt {
        let receipts = try await send([message])
        guard let receipt = receipts.first else { throw .status(code: .internalError, message: "the broker answered no entry") }
        return receipt
    }

    /// Sends messages of one topic in one request, to one queue (the first message's group decides
    /// it for FIFO batches), stored all or none. Receipts come back in the order of `messages`.
    /// A delay message (``Message/deliveryTimestamp``) cannot be part of a batch, as in RocketMQ.
    public func send(_ messages: [Message]) async throws(RocketMQError) -> [SendReceipt] {
        try await send(messages, transactional: false).map(\.receipt)
    }

    /// Starts a transaction: messages sent through it are delivered only once it commits. Needs
    /// ``ProducerOptions/transactionChecker``, which the broker asks about transactions left open.
    public func beginTransaction() throws(RocketMQError) -> Transaction {
        guard options.transactionChecker != nil else {
            throw .invalidArgument("a transactional producer needs ProducerOptions.transactionChecker")
        }
        return Transaction(producer: self)
    }

    /// Sends `message` as a half message: its receipt, transaction id and broker.
    func sendHalf(_ message: Message) async throws(RocketMQError) -> (SendReceipt, String, Endpoint) {
        guard let sent = try await send([message], transactional: true).first else {
            throw .status(code: .internalError, message: "the broker answered no entry")
        }
        guard let transactionId = sent.receipt.transactionId, !transactionId.isEmpty else {
            throw .status(code: .internalError, message: "the broker gave the half message no transaction id")
        }
        return (sent.receipt, transactionId, sent.endpoint)
    }

    private func send(_ messages: [Message], transactional: Bool) async throws(RocketMQError) -> [(receipt: SendReceipt, endpoint: Endpoint)] {
        try session.ensureOpen()
        guard let first = messages.first else { throw .invalidArgument("a batch needs at least one message") }
        guard !first.topic.isEmpty else { throw .invalidArgument("the message has no topic") }
        guard messages.allSatisfy({ $0.topic == first.topic }) else { throw .invalidArgument("a batch must have a single topic") }
        guard messages.count == 1 || messages.allSatisfy({ $0.deliveryTimestamp == nil }) else {
            throw .invalidArgument("a delay message cannot be sent in a batch; send it alone")
        }
        var encoded: [Apache_Rocketmq_V2_Message] = []
        for message in messages { encoded.append(try encode(message, transactional: transactional)) }
        let attempts = max(1, options.maxAttempts)
        var failed: Set<Endpoint> = []
        var lastError = RocketMQError.noQueue(topic: first.topic, reason: "no attempt made")
        var refused: (queue: Apache_Rocketmq_V2_MessageQueue, endpoint: Endpoint)?
        for attempt in 1...attempts {
            let route: TopicRoute
            do throws(RocketMQError) {
                route = try await session.route(for: first.topic)
            } catch {
                // No route to tell why the broker refused: avoid it, as for any other failure.
                if let refused { session.isolate(refused.endpoint, for: options.isolationWindow) }
                throw error
            }
            if let (queue, endpoint) = refused {
                refused = nil
                isolate(endpoint, unlessItDroppedWritesTo: queue, in: route)
            }
            let avoided = failed.union(session.isolatedEndpoints())
            let (queue, endpoint) = try selectQueue(in: route, messageGroup: first.messageGroup, avoiding: avoided)
            var request = Apache_Rocketmq_V2_SendMessageRequest()
            request.messages = encoded.map { message in
                var message = message
                message.systemProperties?.queueId = queue.id
                return message
            }
            do throws(RocketMQError) {
                let response = try await session.call(endpoint) { [request] client, options in try await client.sendMessage(request, options: options) }
                try RocketMQError.check(response.status)
                return zip(encoded, response.entries).map { message, entry in
                    (SendReceipt(
                        messageId: entry.messageId.isEmpty ? message.systemProperties?.messageId ?? "" : entry.messageId,
                        topic: first.topic, brokerName: queue.brokerName, queueId: queue.id, offset: entry.offset,
                        transactionId: entry.transactionId.isEmpty ? nil : entry.transactionId,
                        recallHandle: entry.recallHandle.isEmpty ? nil : entry.recallHandle), endpoint)
                }
            } catch {
                lastError = error
                if case .status(.preconditionFailed, _) = error, attempt < attempts {
                    // A slave, a fenced master, or a queue that no longer takes writes (the
                    // topic's write queues were cut and this producer's route is older): the
                    // route, fetched again for the next attempt, tells which. Only the first
                    // means the broker should be avoided.
                    session.invalidateRoute(of: first.topic)
                    refused = (queue, endpoint)
                } else {
                    noteFailure(of: endpoint, queue: queue, topic: first.topic, error)
                }
                // Not again what the broker already stored (a duplicate for sure), nor a half
                // message unless the broker refused it before storing: an orphaned first half
                // would be checked back and committed as well.
                guard error.isRetryable, !error.isStoredButUnconfirmed, !transactional || error.isRefusedBeforeStoring,
                      attempt < attempts else { throw error }
                session.logger.info("send failed; retrying", metadata: [
                    "topic": "\(first.topic)", "endpoint": "\(endpoint)", "attempt": "\(attempt)", "error": "\(error)"])
                failed.insert(endpoint)
                do { try await Task.sleep(for: .milliseconds(20 * attempt)) } catch { throw .cancelled }
            }
        }
        throw lastError
    }

    /// Starts sending `message` and returns at once; `completion` gets the outcome. The returned
    /// task may be awaited or ignored; ``shutdown()`` waits for it. Sends started this way may
    /// overtake each other: use ``send(_:)-(Message)`` in sequence for a FIFO message group.
    @discardableResult
    public func sendAsync(
        _ message: Message, completion: @escaping @Sendable (Result<SendReceipt, RocketMQError>) -> Void = { _ in }
    ) throws(RocketMQError) -> Task<Void, Never> {
        try inFlight.run {
            do throws(RocketMQError) {
                completion(.success(try await self.send(message)))
            } catch {
                completion(.failure(error))
            }
        }
    }

    /// Hands `message` to the broker without waiting for or reporting its answer: one attempt,
    /// errors only logged (a failing broker is isolated, as after any failed send).
    /// ``shutdown()`` still waits until the request finished.
    public func sendOneway(_ message: Message) throws(RocketMQError) {
        _ = try inFlight.run {
            do throws(RocketMQError) {
                _ = try await self.sendOnce(message)
            } catch {
                self.session.logger.warning("one-way send failed", metadata: ["topic": "\(message.topic)", "error": "\(error)"])
            }
        }
    }

    /// Waits for in-flight async and one-way sends, ends Telemetry and tells the brokers.
    public func shutdown() async {
        await inFlight.drain()
        await session.shutdown()
    }

    // MARK: Internals

    private func sendOnce(_ message: Message) async throws(RocketMQError) -> SendReceipt {
        let route = try await session.route(for: message.topic)
        let (queue, endpoint) = try selectQueue(in: route, messageGroup: message.messageGroup, avoiding: session.isolatedEndpoints())
        var encoded = try encode(message)
        encoded.systemProperties?.queueId = queue.id
        var request = Apache_Rocketmq_V2_SendMessageRequest()
        request.messages = [encoded]
        let response: Apache_Rocketmq_V2_SendMessageResponse
        do throws(RocketMQError) {
            response = try await session.call(endpoint) { [request] client, options in try await client.sendMessage(request, options: options) }
            try RocketMQError.check(response.status)
        } catch {
            noteFailure(of: endpoint, queue: queue, topic: message.topic, error)
            throw error
        }
        let entry = response.entries.first
        return SendReceipt(
            messageId: entry?.messageId ?? "", topic: message.topic, brokerName: queue.brokerName,
            queueId: queue.id, offset: entry?.offset ?? -1, recallHandle: entry.flatMap { $0.recallHandle.isEmpty ? nil : $0.recallHandle })
    }

    /// After a failed send: a broker that failed in a way another may not (unavailable, timed
    /// out, busy) is isolated for ``ProducerOptions/isolationWindow`` whether or not the send is
    /// tried again, as RocketMQ's producers do; otherwise a producer that makes one attempt
    /// (`maxAttempts: 1`, one-way sends) would keep sending every other message to a dead broker.
    private func noteFailure(of endpoint: Endpoint, queue: Apache_Rocketmq_V2_MessageQueue, topic: String, _ error: RocketMQError) {
        guard error.isRetryable else { return }
        session.invalidateRoute(of: topic)
        guard case .status(.preconditionFailed, _) = error else {
            session.isolate(endpoint, for: options.isolationWindow)
            return
        }
        // A slave, a fenced master, or a queue cut from the topic's write count: a fresh route
        // tells which. This send makes no further attempt to fetch one, so it is fetched here.
        Task { [session] in
            do throws(RocketMQError) {
                isolate(endpoint, unlessItDroppedWritesTo: queue, in: try await session.route(for: topic))
            } catch {
                session.isolate(endpoint, for: options.isolationWindow)
            }
        }
    }

    /// Isolates `endpoint`, which refused a send to `queue` with PRECONDITION_FAILED, unless
    /// `route` (fetched since) shows that it still takes writes for the topic, only no longer in
    /// that queue: then the producer's route was older than a cut in the topic's write queues,
    /// and the broker is fine.
    private func isolate(_ endpoint: Endpoint, unlessItDroppedWritesTo queue: Apache_Rocketmq_V2_MessageQueue, in route: TopicRoute) {
        if !route.droppedWrites(to: queue, at: endpoint) { session.isolate(endpoint, for: options.isolationWindow) }
    }

    /// The queue a send goes to, and its broker: for a message group, the queue the group
    /// hashes to; otherwise the next queue round-robin whose broker is not in `avoiding` (or
    /// the next one, if every broker is).
    func selectQueue(
        in route: TopicRoute, messageGroup: String?, avoiding: Set<Endpoint>
    ) throws(RocketMQError) -> (queue: Apache_Rocketmq_V2_MessageQueue, endpoint: Endpoint) {
        let writable = route.writableQueues, endpoints = route.writableEndpoints
        guard !writable.isEmpty else { throw .noQueue(topic: route.topic, reason: "no writable queue in its route") }
        if let messageGroup, !messageGroup.isEmpty {
            // A message group keeps to the queue it hashes to, retries and failing brokers
            // included: the broker orders a group only within one queue, so moving it would
            // break its order (and a send that timed out may be stored there already).
            let index = Int(StableHash.of(messageGroup) % UInt64(writable.count))
            return (writable[index], endpoints[index])
        }
        let start = roundRobin.withLock { next in
            defer { next &+= 1 }
            return next
        } % writable.count
        if !avoiding.isEmpty {
            for step in 0..<writable.count {
                let index = (start + step) % writable.count
                if !avoiding.contains(endpoints[index]) { return (writable[index], endpoints[index]) }
            }
        }
        return (writable[start], endpoints[start])
    }

    private func encode(_ message: Message, transactional: Bool = false) throws(RocketMQError) -> Apache_Rocketmq_V2_Message {
        var system = Apache_Rocketmq_V2_SystemProperties()
        system.tag = message.tag
        system.keys = message.keys
        system.messageId = MessageIDGenerator.next()
        system.bornTimestamp = Google_Protobuf_Timestamp(date: Date())
        system.bornHost = Self.hostName
        if let group = message.messageGroup, !group.isEmpty, message.deliveryTimestamp != nil {
            throw .invalidArgument("a message is either FIFO (message group) or delayed (delivery timestamp), not both")
        }
        if transactional {
            guard message.messageGroup?.isEmpty ?? true, message.deliveryTimestamp == nil else {
                throw .invalidArgument("a transactional message has neither a message group nor a delivery timestamp")
            }
            system.messageType = .transaction
        } else if let group = message.messageGroup, !group.isEmpty {
            system.messageGroup = group
            system.messageType = .fifo
        } else if let delivery = message.deliveryTimestamp {
            system.deliveryTimestamp = Google_Protobuf_Timestamp(date: delivery)
            system.messageType = .delay
        } else {
            system.messageType = .normal
        }
        var body = message.body
        system.bodyEncoding = .identity
        if body.count > options.compressionThreshold {
            body = try Gzip.compress(body)
            system.bodyEncoding = .gzip
        }
        if case .publishing(let publishing)? = session.serverSettings?.pubSub, publishing.maxBodySize > 0,
           body.count > Int(publishing.maxBodySize) {
            throw .status(code: .messageBodyTooLarge, message: "body of \(body.count) bytes exceeds the broker's limit of \(publishing.maxBodySize)")
        }
        var proto = Apache_Rocketmq_V2_Message()
        proto.topic = session.resource(message.topic)
        proto.userProperties = message.properties
        proto.systemProperties = system
        proto.body = body
        return proto
    }
}
