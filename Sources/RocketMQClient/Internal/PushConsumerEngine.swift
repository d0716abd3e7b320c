import DequeModule
import Foundation

/// The moving parts of a ``PushConsumer``: one receive loop per assignment (a queue for a FIFO
/// group, a whole broker, queue -1, for any other; long polling,
/// paused by the ``ConsumeCache`` while it is full), `concurrency` handler workers, and the
/// ack / change-invisible-duration / dead-letter decision after each handler.
///
/// Workers take messages without a message group from one shared queue, so a slow handler
/// holds up only its own worker (a fixed slot per message would queue every n-th message
/// behind it and soon fill the cache). A message group keeps to one worker, which takes its
/// messages in order before shared ones.
actor PushConsumerEngine {
    typealias Handler = @Sendable (ReceivedMessage) async -> ConsumeResult

    let session: ClientSession
    let group: String
    let subscriptions: [String: FilterExpression]
    let options: PushConsumerOptions
    let handler: Handler
    let cache: ConsumeCache
    /// Messages without a group, for any worker; each worker's own queue of group messages.
    private var shared = Deque<ReceivedMessage>()
    private var grouped: [Deque<ReceivedMessage>] = []
    /// Workers waiting for a message, and whether the queues are closed (after `stop`).
    private var idle: [Int: CheckedContinuation<ReceivedMessage?, Never>] = [:]
    private var closed = false
    private var workers: [Task<Void, Never>] = []
    /// The receive loop of each assigned queue, keyed by ``queueKey(_:_:_:)``, with the queue
    /// as assigned (its broker's address included: after a failover the same queue is served
    /// from another address, and its loop is replaced).
    private var receivers: [String: Task<Void, Never>] = [:]
    private var immediateReceives: [UUID: Task<Void, Never>] = [:]
    private var assigned: [String: (queue: Apache_Rocketmq_V2_MessageQueue, call: ReceiveCall)] = [:]
    private var refresher: Task<Void, Never>?
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
        let count = max(1, options.concurrency)
        grouped = Array(repeating: Deque(), count: count)
        for worker in 0..<count {
            workers.append(Task {
                while let message = await self.next(for: worker) {
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
        // finish the cached messages, then the workers end.
        closed = true
        for (_, waiting) in idle { waiting.resume(returning: nil) }
        idle = [:]
        for task in workers { await task.value }
    }

    /// The next message for `worker`: its group's messages first, then a shared one; nil once
    /// stopped and drained.
    private func next(for worker: Int) async -> ReceivedMessage? {
        if let message = grouped[worker].popFirst() ?? shared.popFirst() { return message }
        if closed { return nil }
        return await withCheckedContinuation { idle[worker] = $0 }
    }

    /// The queue key of a receive loop.
    private static func queueKey(_ topic: String, _ brokerName: String, _ queueId: Int32) -> String {
        "\(topic)/\(brokerName)/\(queueId)"
    }

    /// Asks every broker of every subscribed topic for this group's assignments, and brings the
    /// receive loops in line: a loop for each assignment at the address it is assigned at (one
    /// that moved, after a failover say, gets a new loop there); loops of assignments that are
    /// made no more stop. A broker that does not answer keeps its loops, which go on
    /// trying, unless the route no longer names it.
    private func refreshAssignments() async throws(RocketMQError) {
        for (topic, filter) in subscriptions.sorted(by: { $0.key < $1.key }) {
            let route = try await session.route(for: topic)
            let routed = route.endpoints
            var request = Apache_Rocketmq_V2_QueryAssignmentRequest()
            request.topic = session.resource(topic)
            request.group = session.resource(group)
            request.endpoints = session.configuration.endpoints.first?.proto
            var answered: Set<Endpoint> = []
            var current: [String: Apache_Rocketmq_V2_MessageQueue] = [:]
            for endpoint in routed.sorted(by: { $0.description < $1.description }) {
                let response: Apache_Rocketmq_V2_QueryAssignmentResponse
                do throws(RocketMQError) {
                    response = try await session.call(endpoint) { [request] client, options in try await client.queryAssignment(request, options: options) }
                    // FORBIDDEN: the topic has no readable queue there (made write-only): nothing to poll.
                    if response.status?.code == .forbidden {
                        answered.insert(endpoint)
                        continue
                    }
                    try RocketMQError.check(response.status)
                } catch {
                    session.logger.info("query assignment failed", metadata: ["endpoint": "\(endpoint)", "error": "\(error)"])
                    continue
                }
                answered.insert(endpoint)
                for assignment in response.assignments {
                    guard let queue = assignment.messageQueue, queue.endpoint != nil else { continue }
                    current[Self.queueKey(topic, queue.brokerName, queue.id)] = queue
                }
            }
            guard !stopping else { return }
            for (key, entry) in assigned where key.hasPrefix("\(topic)/") && current[key] == nil {
                guard let endpoint = entry.queue.endpoint, answered.contains(endpoint) || !routed.contains(endpoint) else { continue }
                stopReceiving(key)
            }
            for (key, queue) in current {
                if let running = assigned[key], running.queue.endpoint == queue.endpoint { continue }
                if assigned[key] != nil {
                    session.logger.info("queue moved; receiving from its new address", metadata: [
                        "queue": "\(key)", "endpoint": "\(queue.endpoint.map { "\($0)" } ?? "")"])
                    stopReceiving(key)
                }
                let receive = ReceiveCall(session: session, group: group, filter: filter, autoRenew: true)
                assigned[key] = (queue, receive)
                receivers[key] = Task { await self.receiveLoop(queue: queue, call: receive) }
            }
        }
    }

    /// Stops the receive loop of `key` (what it already received is still handled).
    private func stopReceiving(_ key: String) {
        receivers.removeValue(forKey: key)?.cancel()
        assigned[key] = nil
    }

    /// One receive without long polling on the queue `message` came from, after `delay`.
    ///
    /// The broker hands out a FIFO group's next message only after the previous one is acked
    /// (or becomes visible again). A changed invisible duration wakes no receive already
    /// long-polling, and an ack's wake-up may go to another consumer's poll; without this a
    /// group would advance one message per long-polling timeout. A message from a queue this
    /// consumer polls as part of its broker (-1: a group made FIFO since the last assignment)
    /// takes that loop's call.
    private func receiveNext(after message: ReceivedMessage, delay: Duration = .zero) {
        guard !stopping,
              let (queue, call) = assigned[Self.queueKey(message.topic, message.brokerName, message.queueId)]
                ?? assigned[Self.queueKey(message.topic, message.brokerName, -1)]
        else { return }
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
            await cache.fill(reserved: granted, received: messages.count)
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
                await cache.fill(reserved: granted, received: messages.count)
                for message in messages { await dispatch(message) }
                failures = 0
            } catch {
                await cache.fill(reserved: granted, received: 0)
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

    /// Messages of a group always go to the same worker (strict order); others to whichever
    /// worker is free first.
    private func dispatch(_ message: ReceivedMessage) {
        if let messageGroup = message.messageGroup, !messageGroup.isEmpty {
            let worker = Int(StableHash.of(messageGroup) % UInt64(grouped.count))
            if let waiting = idle.removeValue(forKey: worker) {
                waiting.resume(returning: message)
            } else {
                grouped[worker].append(message)
            }
        } else if let worker = idle.keys.min(), let waiting = idle.removeValue(forKey: worker) {
            waiting.resume(returning: message)
        } else {
            shared.append(message)
        }
    }

    /// Settles a handled message as ``SettleRetry`` says: tried again while the failure may pass.
    private nonisolated func settle(
        _ what: String, _ message: ReceivedMessage, _ call: () async throws(RocketMQError) -> Void
    ) async throws(RocketMQError) {
        let attempts = try await SettleRetry().run(isStopping: { await self.stopping }, onRetry: { attempt, error in
            session.logger.log(level: attempt == 1 ? .info : .debug, "\(what) failed; retrying", metadata: [
                "message-id": "\(message.messageId)", "attempt": "\(attempt)", "error": "\(error)"])
        }, call)
        if attempts > 1 {
            session.logger.info("\(what) went through", metadata: ["message-id": "\(message.messageId)", "attempts": "\(attempts)"])
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
                try await settle("ack", message) { () throws(RocketMQError) in try await session.ack(message, group: group) }
                if let messageGroup = message.messageGroup, !messageGroup.isEmpty { await receiveNext(after: message) }
            case .failure:
                let policy = session.serverSettings?.backoffPolicy
                let maxAttempts = policy?.maxAttempts ?? 16
                if message.deliveryAttempt >= maxAttempts {
                    try await settle("forwarding to the dead-letter queue", message) { () throws(RocketMQError) in
                        try await session.forwardToDeadLetterQueue(message, group: group, maxAttempts: maxAttempts)
                    }
                } else {
                    let delay = RetryBackoff.delay(after: message.deliveryAttempt, policy: policy)
                    try await settle("changing the invisible duration", message) { () throws(RocketMQError) in
                        _ = try await session.changeInvisibleDuration(message, group: group, to: delay)
                    }
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
