import Foundation

/// The moving parts of a ``PushConsumer``: one receive loop per assigned queue (long polling,
/// paused by the ``ConsumeCache`` while it is full), `concurrency` handler slots fed by
/// streams, and the ack / change-invisible-duration / dead-letter decision after each handler.
actor PushConsumerEngine {
    typealias Handler = @Sendable (ReceivedMessage) async -> ConsumeResult

    let session: ClientSession
    let group: String
    let subscriptions: [String: FilterExpression]
    let options: PushConsumerOptions
    let handler: Handler
    let cache: ConsumeCache
    private var slots: [AsyncStream<ReceivedMessage>.Continuation] = []
    private var slotTasks: [Task<Void, Never>] = []
    private var receivers: [String: Task<Void, Never>] = [:]
    private var immediateReceives: [UUID: Task<Void, Never>] = [:]
    private var assigned: [String: (queue: Apache_Rocketmq_V2_MessageQueue, call: ReceiveCall)] = [:]
    private var refresher: Task<Void, Never>?
    private var roundRobin = 0
    private var stopping = false

    init(session: ClientSession, group: String, subscriptions: [String: FilterExpression], options: PushConsumerOptions, handler: @escaping Handler) {
        self.session = session
        self.group = group
        self.subscriptions = subscriptions
        self.options = options
        self.handler = handler
        self.cache = ConsumeCache(capacity: options.cacheCapacity)
    }

    func start() async throws(RocketMQError) {
        for _ in 0..<max(1, options.concurrency) {
            let (stream, continuation) = AsyncStream.makeStream(of: ReceivedMessage.self)
            slots.append(continuation)
            slotTasks.append(Task {
                for await message in stream {
                    await self.consume(message)
                    await self.cache.release(1)
                }
            })
        }
        try await refreshAssignments()
        let interval = session.configuration.routeRefreshInterval
        refresher = Task {
            while !Task.isCancelled {
                do { try await Task.sleep(for: interval) } catch { return }
                try? await self.refreshAssignments()
            }
        }
    }

    /// Stops receiving, lets the handlers finish what is cached, and returns.
    func stop() async {
        stopping = true
        refresher?.cancel()
        let receiving = Array(receivers.values) + Array(immediateReceives.values)
        for task in receiving { task.cancel() }
        await cache.close()
        for task in receiving { await task.value }
        receivers = [:]
        // No receive runs any more (and `stopping` keeps new ones from starting): handlers
        // finish the cached messages, then the slots end.
        for slot in slots { slot.finish() }
        for task in slotTasks { await task.value }
    }

    /// Asks every broker of every subscribed topic for this group's queues and starts a receive
    /// loop for each queue that has none.
    private func refreshAssignments() async throws(RocketMQError) {
        for (topic, filter) in subscriptions.sorted(by: { $0.key < $1.key }) {
            let route = try await session.route(for: topic)
            var request = Apache_Rocketmq_V2_QueryAssignmentRequest()
            request.topic = session.resource(topic)
            request.group = session.resource(group)
            request.endpoints = session.configuration.endpoints.first?.proto
            for endpoint in route.endpoints.sorted(by: { $0.description < $1.description }) {
                let response: Apache_Rocketmq_V2_QueryAssignmentResponse
                do throws(RocketMQError) {
                    response = try await session.call(endpoint) { [request] client, options in try await client.queryAssignment(request, options: options) }
                    try RocketMQError.check(response.status)
                } catch {
                    session.logger.info("query assignment failed", metadata: ["endpoint": "\(endpoint)", "error": "\(error)"])
                    continue
                }
                for assignment in response.assignments {
                    guard let queue = assignment.messageQueue, queue.endpoint != nil else { continue }
                    let key = "\(topic)/\(queue.brokerName)/\(queue.id)"
                    guard receivers[key] == nil, !stopping else { continue }
                    let receive = ReceiveCall(session: session, group: group, filter: filter, autoRenew: true)
                    assigned[key] = (queue, receive)
                    receivers[key] = Task { await self.receiveLoop(queue: queue, call: receive) }
                }
            }
        }
    }

    /// One receive without long polling on the queue `message` came from, after `delay`.
    ///
    /// The broker hands out a FIFO group's next message only after the previous one is acked
    /// (or becomes visible again), but neither an ack nor a changed invisible duration wakes
    /// receives already long-polling that queue; without this a group would advance one
    /// message per long-polling timeout.
    private func receiveNext(after message: ReceivedMessage, delay: Duration = .zero) {
        guard !stopping, let (queue, call) = assigned["\(message.topic)/\(message.brokerName)/\(message.queueId)"] else { return }
        let options = self.options
        let cache = self.cache
        let id = UUID()
        immediateReceives[id] = Task {
            defer { self.finishedImmediateReceive(id) }
            if delay > .zero {
                do { try await Task.sleep(for: delay) } catch { return }
            }
            let granted = await cache.reserve(upTo: max(1, min(options.batchSize, 32)))
            guard granted > 0 else { return }
            let messages = (try? await call.run(queue: queue, batchSize: granted, invisibleDuration: options.invisibleDuration, longPolling: .zero)) ?? []
            await cache.release(granted - messages.count)
            for message in messages { self.dispatch(message) }
        }
    }

    private func finishedImmediateReceive(_ id: UUID) {
        immediateReceives[id] = nil
    }

    private nonisolated func receiveLoop(queue: Apache_Rocketmq_V2_MessageQueue, call: ReceiveCall) async {
        var failures = 0
        while !Task.isCancelled {
            let granted = await cache.reserve(upTo: max(1, min(options.batchSize, 32)))
            if granted == 0 { return }
            do throws(RocketMQError) {
                let messages = try await call.run(
                    queue: queue, batchSize: granted, invisibleDuration: options.invisibleDuration,
                    longPolling: options.longPollingTimeout)
                await cache.release(granted - messages.count)
                for message in messages { await dispatch(message) }
                failures = 0
            } catch {
                await cache.release(granted)
                if Task.isCancelled || error == .cancelled || error == .shutDown { return }
                failures += 1
                session.logger.log(
                    level: failures == 1 ? .info : .debug, "receive failed; retrying",
                    metadata: ["queue": "\(queue.brokerName)/\(queue.id)", "error": "\(error)", "failures": "\(failures)"])
                // Back off briefly: a restarting broker is usually back within seconds.
                do { try await Task.sleep(for: .milliseconds(min(200 * failures, 2000))) } catch { return }
            }
        }
    }

    /// Messages of a group always go to the same slot (strict order); others round-robin.
    private func dispatch(_ message: ReceivedMessage) {
        let index: Int
        if let messageGroup = message.messageGroup, !messageGroup.isEmpty {
            index = Int(StableHash.of(messageGroup) % UInt64(slots.count))
        } else {
            index = roundRobin % slots.count
            roundRobin &+= 1
        }
        slots[index].yield(message)
    }

    /// Acks a handled message, trying again while the failure may pass (a busy or briefly
    /// unreachable broker): up to 5 attempts over about 3 s. The broker keeps an unacked
    /// message of a live consumer hidden (`auto_renew`), so a lost ack would hold it back for
    /// long, and then deliver it again.
    private nonisolated func ack(_ message: ReceivedMessage) async throws(RocketMQError) {
        var attempt = 1
        while true {
            do throws(RocketMQError) {
                return try await session.ack(message, group: group)
            } catch {
                guard error.isRetryable, attempt < 5 else { throw error }
                session.logger.info("ack failed; retrying", metadata: [
                    "message-id": "\(message.messageId)", "attempt": "\(attempt)", "error": "\(error)"])
                do { try await Task.sleep(for: .milliseconds(300 * attempt)) } catch { throw .cancelled }
                attempt += 1
            }
        }
    }

    private nonisolated func consume(_ delivered: ReceivedMessage) async {
        let renewal = InvisibilityRenewal(message: delivered, group: group, duration: options.invisibleDuration, session: session)
        let result = await handler(delivered)
        var message = delivered
        message.receiptHandle = await renewal.finish()
        do throws(RocketMQError) {
            switch result {
            case .success:
                try await ack(message)
                if let messageGroup = message.messageGroup, !messageGroup.isEmpty { await receiveNext(after: message) }
            case .failure:
                let policy = session.serverSettings?.backoffPolicy
                let maxAttempts = policy?.maxAttempts ?? 16
                if message.deliveryAttempt >= maxAttempts {
                    try await session.forwardToDeadLetterQueue(message, group: group, maxAttempts: maxAttempts)
                } else {
                    let delay = RetryBackoff.delay(after: message.deliveryAttempt, policy: policy)
                    _ = try await session.changeInvisibleDuration(message, group: group, to: delay)
                    if let messageGroup = message.messageGroup, !messageGroup.isEmpty {
                        await receiveNext(after: message, delay: delay + .milliseconds(20))
                    }
                }
            }
        } catch {
            session.logger.warning("settling a consumed message failed; it will be redelivered", metadata: [
                "message-id": "\(message.messageId)", "result": "\(result)", "error": "\(error)"])
        }
    }
}
