import Foundation
import RocketMQAPI
import RocketMQNameServer
import RocketMQStore
import RocketRPC

/// The broker's `apache.rocketmq.v2.MessagingService`: what official RocketMQ 5 clients call.
///
/// Every response carries an explicit `Status` (clients treat a missing code as an illegal
/// response); domain failures travel as `BrokerError.status`, never as gRPC errors, except for
/// malformed streams where the protocol has no status field to use.
public struct MessagingServiceProvider: Apache_Rocketmq_V2_MessagingService.ServiceProtocol {
    typealias Code = Apache_Rocketmq_V2_Code
    let broker: Broker

    public init(broker: Broker) {
        self.broker = broker
    }

    // MARK: Common checks

    static let clientIdHeader = "x-mq-client-id"
    /// The client's language (`JAVA`, `PYTHON`, `SWIFT`, ...), sent with every call.
    static let languageHeader = "x-mq-language"

    /// The caller's `x-mq-client-id`; every RocketMQ 5 call carries one.
    func clientId(_ context: ServerContext) throws(BrokerError) -> String {
        guard let id = context.requestMetadata.first(Self.clientIdHeader), !id.isBlank else {
            throw .clientIdRequired
        }
        return id
    }

    /// Whether `clientId(_:)` would return, checked on the header bytes without building the
    /// `String` (for a path that runs on every send).
    static func hasClientID(_ metadata: Metadata) -> Bool {
        metadata.withFirstValueBytes(clientIdHeader) { bytes in
            guard let bytes else { return false }
            if bytes.allSatisfy({ $0 < 0x80 }) { return !bytes.isBlankASCII }
            return !String(decoding: bytes, as: UTF8.self).isBlank
        }
    }

    /// Whether the caller picks the queue of each message it sends, queue 0 included: our Swift
    /// client does (`x-mq-language: SWIFT`) and reports that queue in its receipts. Others'
    /// `queue_id` 0 may be a field left unset (see `Broker.queue(for:requested:messageGroup:clientChoosesQueues:)`).
    static func choosesQueues(_ metadata: Metadata) -> Bool {
        metadata.withFirstValueBytes(languageHeader) { $0?.equals("SWIFT") ?? false }
    }

    func namespace(_ context: ServerContext) -> String {
        context.requestMetadata.first("x-mq-namespace") ?? ""
    }

    /// Runs `body`, turning a `BrokerError` into the response's status.
    private func answer<Response>(
        _ make: (Apache_Rocketmq_V2_Status) -> Response, _ body: () async throws(BrokerError) -> Response
    ) async -> Response {
        do {
            return try await body()
        } catch {
            return make(error.status)
        }
    }

    // MARK: Routes and clients

    public func queryRoute(request: Apache_Rocketmq_V2_QueryRouteRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_QueryRouteResponse {
        await answer({ .init(status: $0) }) { () throws(BrokerError) in
            _ = try clientId(context)
            let name = request.topic?.name ?? ""
            let topic = try broker.topic(named: name)
            return .init(status: .ok, messageQueues: broker.messageQueues(for: topic, namespace: request.topic?.resourceNamespace ?? ""))
        }
    }

    public func heartbeat(request: Apache_Rocketmq_V2_HeartbeatRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_HeartbeatResponse {
        await answer({ .init(status: $0) }) { () throws(BrokerError) in
            let id = try clientId(context)
            // The type comes with the heartbeat (official clients set it) or from the client's
            // settings; a client of no known type is not taken, as RocketMQ 5 answers it.
            let type = request.clientType != .unspecified ? request.clientType : broker.clients.type(of: id)
            if type == .unspecified {
                throw .unrecognizedClientType("the heartbeat names no client type, and client \(id) has sent no settings that do")
            }
            let group = request.group?.name
            if let group, !group.isEmpty, type != .producer {
                _ = try broker.group(named: group)
            }
            broker.clients.heartbeat(clientId: id, type: type, group: group, language: context.requestMetadata.first(Self.languageHeader))
            return .init(status: .ok)
        }
    }

    public func notifyClientTermination(request: Apache_Rocketmq_V2_NotifyClientTerminationRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_NotifyClientTerminationResponse {
        await answer({ .init(status: $0) }) { () throws(BrokerError) in
            broker.clients.remove(clientId: try clientId(context))
            return .init(status: .ok)
        }
    }

    public func queryAssignment(request: Apache_Rocketmq_V2_QueryAssignmentRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_QueryAssignmentResponse {
        await answer({ .init(status: $0) }) { () throws(BrokerError) in
            _ = try clientId(context)
            let topic = try broker.topic(named: request.topic?.name ?? "")
            let group = try broker.group(named: request.group?.name ?? "")
            let queues = broker.messageQueues(for: topic, namespace: request.topic?.resourceNamespace ?? "").filter {
                $0.permission == .read || $0.permission == .readWrite
            }
            // As RocketMQ 5 assigns: a FIFO group each queue (its order is per queue); any other
            // group the broker as a whole, queue -1, so a push consumer keeps one long poll per
            // broker rather than one per queue (a receive from -1 takes from every queue).
            // No readable queue is FORBIDDEN, as RocketMQ 5 answers it.
            guard var wholeBroker = queues.first else {
                throw .forbidden("topic \(topic.name) has no readable queue on broker \(broker.configuration.brokerName)")
            }
            guard !group.fifo else { return .init(status: .ok, assignments: queues.map { Apache_Rocketmq_V2_Assignment(messageQueue: $0) }) }
            wholeBroker.id = -1
            return .init(status: .ok, assignments: [Apache_Rocketmq_V2_Assignment(messageQueue: wholeBroker)])
        }
    }

    // MARK: Sending

    public func sendMessage(request: Apache_Rocketmq_V2_SendMessageRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_SendMessageResponse {
        await answer({ .init(status: $0) }) { () throws(BrokerError) in
            try await broker.waitForWriteHold()
            let client = try clientId(context)
            guard !request.messages.isEmpty else { throw .messageCorrupted("SendMessage carries no message") }
            // A batch is stored as one, in one queue of one topic: RocketMQ 5 refuses a batch
            // that mixes topics (or namespaces) as corrupted, before looking at any message.
            if let first = request.messages.first?.topic,
               let other = request.messages.firstIndex(where: { $0.topic?.name != first.name || $0.topic?.resourceNamespace != first.resourceNamespace })
            {
                return Self.refusedBatch(request.messages, failing: other, BrokerError.messageCorrupted(
                    "the batch mixes topics: \((request.messages[other].topic?.name ?? "").debugDescription) after \(first.name.debugDescription); a batch goes to one topic").status)
            }
            let choosesQueues = Self.choosesQueues(context.requestMetadata)
            // Every message is checked before any is stored: a batch with one bad message is
            // refused whole, as RocketMQ stores a batch as one (the producer may fix and resend
            // all of it without storing any twice).
            var checked: [CheckedSend] = []
            checked.reserveCapacity(request.messages.count)
            for (index, message) in request.messages.enumerated() {
                do throws(BrokerError) {
                    let sent = try check(message)
                    if let problem = broker.chosenQueueProblem(
                        sent.topic, requested: sent.system.queueId, messageGroup: sent.system.messageGroup, clientChoosesQueues: choosesQueues)
                    {
                        throw problem
                    }
                    if request.messages.count > 1, let why = Self.batchRefusal(sent) { throw .badRequest(why) }
                    checked.append(sent)
                } catch {
                    return Self.refusedBatch(request.messages, failing: index, error.status)
                }
            }
            // A batch goes to one queue, as RocketMQ stores a batch: its first message decides
            // it (the queue its client chose, or round-robin). A message of
            // a group goes to its group's queue all the same: a group's order holds only within
            // one queue, and its next message, sent alone, goes there.
            var batchQueues: [String: Int32] = [:]
            let placed = checked.map { checked in
                let (topic, system) = (checked.topic, checked.system)
                let grouped = !(system.messageGroup ?? "").isEmpty
                let queueId = (grouped ? nil : batchQueues[topic.name]) ?? broker.queue(
                    for: topic, requested: system.queueId, messageGroup: system.messageGroup, clientChoosesQueues: choosesQueues)
                if !grouped { batchQueues[topic.name] = queueId }
                return (checked: checked, queueId: queueId)
            }
            if placed.count > 1 {
                return await storeTogether(placed, messages: request.messages, peer: context.peer)
            }
            let (only, queueId) = placed[0]  // one message: the request has at least one, checked above
            let message = only.message
            do throws(BrokerError) {
                let result = try await send(only, toQueue: queueId, peer: context.peer)
                // Its producer is asked about the transaction even if its settings do not
                // list the topic (a producer started without naming its topics).
                if result.transactionId != nil, let topic = message.topic?.name {
                    broker.clients.notePublishedTransaction(clientId: client, topic: topic)
                }
                return Self.sendResponse([.init(
                    status: .ok, messageId: result.messageId, transactionId: result.transactionId ?? "", offset: result.queueOffset,
                    recallHandle: result.recallHandle?.description ?? "")])
            } catch {
                return Self.sendResponse([.init(status: error.status, messageId: message.systemProperties?.messageId ?? "")])
            }
        }
    }

    /// Why `checked` may not travel in a batch, or nil. A half message and a delay message each
    /// go through a service of their own (transactions, the schedule) rather than straight to
    /// their queue, so a batch holding one could not be stored whole or not at all; RocketMQ
    /// refuses such batches too. A delay message is refused whether or not it is due yet, so the
    /// answer does not depend on the clocks.
    static func batchRefusal(_ checked: CheckedSend) -> String? {
        if checked.type == .transaction { return "a transaction's half message cannot be sent in a batch; send it alone" }
        if checked.type == .delay || checked.system.deliveryTimestamp != nil {
            return "a delay message cannot be sent in a batch; send it alone"
        }
        return nil
    }

    /// A batch of messages stored at once, as RocketMQ stores a batch: all of it or none
    /// (`Broker.appendBatch`), into one segment, so that with sync flush one group commit covers
    /// it rather than one flush each. A message that cannot be encoded, or whose record is
    /// larger than the store takes, refuses the batch before anything is stored; so does a full
    /// disk, or a flush backlog, for all of it alike.
    private func storeTogether(
        _ placed: [(checked: CheckedSend, queueId: Int32)], messages: [Apache_Rocketmq_V2_Message], peer: String
    ) async -> Apache_Rocketmq_V2_SendMessageResponse {
        var encoded: [EncodedMessage] = []
        encoded.reserveCapacity(placed.count)
        for (index, (checked, queueId)) in placed.enumerated() {
            do {
                let record = try broker.store.encode(checked.message.toAppend(queueId: queueId, bornHost: peer, type: checked.type))
                try broker.store.checkSize(record)
                encoded.append(record)
            } catch {
                return Self.refusedBatch(messages, failing: index, BrokerError(error).status)
            }
        }
        let (written, outcome) = await broker.appendBatch(encoded)
        switch outcome {
        case .success(let results):
            return Self.sendResponse(zip(placed, results).map { placed, result in
                let messageId = placed.checked.system.messageId
                return .init(status: .ok, messageId: messageId.isEmpty ? result.msgId : messageId, offset: result.queueOffset)
            })
        case .failure(let error):
            // One status for all: every message of the batch shares its fate.
            var status = error.status
            status.message += written ? "; all \(placed.count) messages of the batch were written, none is confirmed" : "; nothing of the batch was stored"
            return .init(status: status, entries: placed.map { .init(status: status, messageId: $0.checked.system.messageId) })
        }
    }

    /// The answer to a SendMessage with these per-message results.
    static func sendResponse(_ entries: [Apache_Rocketmq_V2_SendResultEntry]) -> Apache_Rocketmq_V2_SendMessageResponse {
        let failures = entries.filter { $0.status?.code != .ok }
        let status: Apache_Rocketmq_V2_Status
        if failures.isEmpty {
            status = .ok
        } else if failures.count == entries.count, entries.count == 1, let only = failures.first?.status {
            status = only
        } else {
            status = .init(code: .multipleResults, message: "\(failures.count) of \(entries.count) messages failed")
        }
        return .init(status: status, entries: entries)
    }

    /// The answer to a request with a message that failed its checks: nothing of it was stored.
    /// One message alone gets its own status; in a batch, the status names the message, and
    /// every entry carries it (none was stored).
    static func refusedBatch(
        _ messages: [Apache_Rocketmq_V2_Message], failing index: Int, _ status: Apache_Rocketmq_V2_Status
    ) -> Apache_Rocketmq_V2_SendMessageResponse {
        var status = status
        if messages.count > 1 {
            status.message = "message \(index + 1) of \(messages.count): \(status.message); nothing of the batch was stored"
        }
        return .init(status: status, entries: messages.map { .init(status: status, messageId: $0.systemProperties?.messageId ?? "") })
    }

    /// A message that passed every check of `SendValidation`, with its topic and type.
    struct CheckedSend {
        var message: Apache_Rocketmq_V2_Message
        var system: Apache_Rocketmq_V2_SystemProperties
        var type: Apache_Rocketmq_V2_MessageType
        var topic: TopicConfig
    }

    /// Checks `message` against its topic (it exists, takes writes and its type) and the send rules.
    private func check(_ message: Apache_Rocketmq_V2_Message) throws(BrokerError) -> CheckedSend {
        let name = message.topic?.name ?? ""
        let system = message.systemProperties ?? Apache_Rocketmq_V2_SystemProperties()
        let type = system.messageType == .unspecified ? inferredType(system) : system.messageType
        let topic = try broker.topic(named: name)
        guard topic.isWritable else { throw .forbidden("topic \(name) is not writable on broker \(broker.configuration.brokerName)") }
        try SendValidation.check(message, type: type, topic: topic, maxBodySize: broker.maxBodySize)
        return CheckedSend(message: message, system: system, type: type, topic: topic)
    }

    private func send(
        _ checked: CheckedSend, toQueue queueId: Int32, peer: String
    ) async throws(BrokerError) -> (messageId: String, queueOffset: Int64, transactionId: String?, recallHandle: RecallHandle?) {
        let (message, system, type) = (checked.message, checked.system, checked.type)
        let toAppend = message.toAppend(queueId: queueId, bornHost: peer, type: type)
        if type == .transaction {
            // A half message: stored apart until its producer commits it (see TransactionService).
            // At most a day, as the broker's own `transactionTimeout` may be: a producer's absurd
            // duration must not put the first check beyond any clock.
            let recovery = system.orphanedTransactionRecoveryDuration.map(\.duration).flatMap { $0 > .zero ? min($0, .seconds(86_400)) : nil }
            let transactionId = try await broker.transactions.prepare(
                toAppend, firstCheck: recovery ?? broker.configuration.transactionTimeout, producerGave: recovery != nil, broker: broker)
            return (system.messageId.isEmpty ? transactionId : system.messageId, 0, transactionId, nil)
        }
        // A delay message waits in the schedule until due (see DelayService); its receipt names
        // its place there, which the recall handle carries. One due already is stored in its
        // queue at once, as RocketMQ does.
        let due = system.deliveryTimestamp.map(\.milliseconds).flatMap { $0 > MessageStore.nowMilliseconds() ? $0 : nil }
        let result = if let due {
            try await broker.delays.schedule(toAppend, due: due, broker: broker)
        } else {
            try await broker.append(toAppend)
        }
        let messageId = system.messageId.isEmpty ? result.msgId : system.messageId
        let recallHandle = due.map {
            RecallHandle(brokerName: broker.configuration.brokerName, queueId: 0, offset: result.queueOffset, deliveryTime: $0, messageId: messageId)
        }
        return (messageId, result.queueOffset, nil, recallHandle)
    }

    private func inferredType(_ system: Apache_Rocketmq_V2_SystemProperties) -> Apache_Rocketmq_V2_MessageType {
        if let group = system.messageGroup, !group.isEmpty { return .fifo }
        if system.deliveryTimestamp != nil { return .delay }
        return .normal
    }

    public func endTransaction(request: Apache_Rocketmq_V2_EndTransactionRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_EndTransactionResponse {
        await answer({ .init(status: $0) }) { () throws(BrokerError) in
            try await broker.waitForWriteHold()
            _ = try clientId(context)
            let topic = request.topic?.name ?? ""
            guard !topic.isEmpty else { throw .badRequest("EndTransaction needs the message's topic") }
            guard !request.transactionId.isEmpty else { throw .invalidTransaction("EndTransaction needs a transaction id") }
            guard !request.messageId.isEmpty else { throw .badRequest("EndTransaction needs the message id") }
            let resolution: TransactionService.Resolution
            switch request.resolution {
            case .commit: resolution = .commit
            case .rollback: resolution = .rollback
            case .unspecified where request.source == .sourceServerCheck:
                // The producer's checker does not know yet: the transaction stays open and is
                // checked back again after the check interval.
                return .init(status: .ok)
            default: throw .badRequest("EndTransaction needs resolution COMMIT or ROLLBACK")
            }
            try await broker.transactions.end(
                transactionId: request.transactionId, messageId: request.messageId, topic: topic, resolution: resolution,
                fromCheck: request.source == .sourceServerCheck, broker: broker)
            return .init(status: .ok)
        }
    }

    public func recallMessage(request: Apache_Rocketmq_V2_RecallMessageRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_RecallMessageResponse {
        await answer({ .init(status: $0) }) { () throws(BrokerError) in
            try await broker.waitForWriteHold()
            _ = try clientId(context)
            guard let handle = RecallHandle(parsing: request.recallHandle) else { throw .badRequest(RecallHandle.invalid(request.recallHandle)) }
            let messageId = try await broker.recall(topic: request.topic?.name ?? "", handle: handle)
            return .init(status: .ok, messageId: messageId)
        }
    }

    public func syncLiteSubscription(request: Apache_Rocketmq_V2_SyncLiteSubscriptionRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_SyncLiteSubscriptionResponse {
        .init(status: BrokerError.notImplemented("lite topics").status)
    }

    // MARK: Pop-style consumption

    public func receiveMessage(
        request: Apache_Rocketmq_V2_ReceiveMessageRequest,
        response: ResponseWriter<Apache_Rocketmq_V2_ReceiveMessageResponse>,
        context: ServerContext
    ) async throws {
        let deliveries: [Delivery]
        let namespace = namespace(context)
        let invisible: Duration
        do {
            try await broker.waitForWriteHold()
            (deliveries, invisible) = try await receive(request, context: context)
        } catch {
            try await response.write(.init(content: .status(error.status)))
            return
        }
        guard !deliveries.isEmpty else {
            try await response.write(.init(content: .status(.init(code: .messageNotFound, message: "no new message"))))
            return
        }
        // Status, when the broker handed the batch over (clients measure delivery latency from
        // it, so to the microsecond rather than the millisecond of message timestamps; the
        // official Python push consumer fails a batch without it), then the messages: one write
        // for the whole batch.
        var batch: [Apache_Rocketmq_V2_ReceiveMessageResponse] = [
            .init(content: .status(.ok)),
            .init(content: .deliveryTimestamp(.now())),
        ]
        batch.reserveCapacity(deliveries.count + 2)
        for delivery in deliveries {
            let message = delivery.message.toProtocol(
                namespace: namespace, receiptHandle: delivery.handle.description,
                invisibleDuration: invisible, deliveryAttempt: delivery.attempt)
            batch.append(.init(content: .message(message)))
        }
        do {
            try await response.write(contentsOf: batch)
        } catch {
            await giveBack(deliveries, of: request)
            throw error
        }
    }

    /// Deliveries whose answer never reached the caller (it reset the stream: its deadline
    /// passed, say, while the broker was busy or paused) go back to the group at once, as
    /// RocketMQ's proxy nacks such a batch. Left in flight they stayed hidden for their invisible
    /// duration, and an auto-renewed one for as long as its consumer lives, holding back the
    /// rest of its FIFO message group all that time.
    private func giveBack(_ deliveries: [Delivery], of request: Apache_Rocketmq_V2_ReceiveMessageRequest) async {
        let group = request.group?.name ?? ""
        let topic = request.messageQueue?.topic?.name ?? ""
        for delivery in deliveries {
            _ = try? await broker.consumption.changeInvisibleDuration(
                group: group, topic: delivery.handle.topic(named: topic, group: group), handle: delivery.handle, duration: .zero)
        }
        broker.arrivals.signal(topic)
        broker.logger.info("a receive's answer could not be sent; its messages are visible again", metadata: [
            "group": "\(group)", "topic": "\(topic)", "messages": "\(deliveries.count)"])
    }

    private func receive(
        _ request: Apache_Rocketmq_V2_ReceiveMessageRequest, context: ServerContext
    ) async throws(BrokerError) -> ([Delivery], Duration) {
        let configuration = broker.configuration
        let client = try clientId(context)
        broker.clients.touch(client)
        let group = try broker.group(named: request.group?.name ?? "")
        guard group.consumeEnabled else { throw .forbidden("consumer group \(group.name) has consumption disabled") }
        let topic = try broker.topic(named: request.messageQueue?.topic?.name ?? "")
        guard topic.isReadable else { throw .forbidden("topic \(topic.name) is not readable on broker \(configuration.brokerName)") }
        try checkBatchSize(request.batchSize)
        let invisible = request.invisibleDuration?.duration ?? .seconds(30)
        guard invisible >= configuration.minInvisibleDuration, invisible <= configuration.maxInvisibleDuration else {
            throw .illegalInvisibleTime("invisible duration \(invisible) is outside \(configuration.minInvisibleDuration)...\(configuration.maxInvisibleDuration)")
        }
        let requestedPoll = request.longPollingTimeout?.duration ?? .zero
        guard requestedPoll >= .zero else { throw .illegalPollingTime("long polling timeout \(requestedPoll) is negative") }
        let filter = try MessageFilter(request.filterExpression)

        // Answer before the caller's deadline, with a little room for the reply to travel.
        var pollFor = min(requestedPoll, configuration.maxLongPollingTimeout)
        if let deadline = context.deadline {
            pollFor = min(pollFor, max(.zero, deadline - .now - .milliseconds(200)))
        }
        let queueIds = queueOrder(topic: topic, requested: request.messageQueue?.id ?? -1)
        let pollEnd = ContinuousClock.now + pollFor
        let retryTopic = SystemTopic.retry(group: group.name)
        while true {
            let epoch = broker.arrivals.beginPoll(topic.name, as: .group(group.name))
            defer { broker.arrivals.endPoll() }
            var deliveries: [Delivery] = []
            do throws(BrokerError) {
                // Messages an operator resent or re-drove to this group come first, unfiltered: a
                // tag filter would mark them done without delivering them.
                if broker.topics[retryTopic] != nil {
                    deliveries = try await broker.consumption.receive(
                        group: group, topic: retryTopic, queueIds: [0], batchSize: Int(request.batchSize),
                        invisibleDuration: invisible, filter: .all, autoRenewFor: request.autoRenew ? client : nil)
                }
                if deliveries.count < Int(request.batchSize) {
                    deliveries += try await broker.consumption.receive(
                        group: group, topic: topic.name, queueIds: queueIds, batchSize: Int(request.batchSize) - deliveries.count,
                        invisibleDuration: invisible, filter: filter, autoRenewFor: request.autoRenew ? client : nil)
                }
            } catch {
                // Arrivals may have coalesced into this failed scan: the next receiver takes them on.
                broker.arrivals.handOn(topic.name, group: group.name)
                throw error
            }
            // A full batch may have left messages whose arrivals woke nobody else (they coalesced
            // into this receiver's wake-up): the group's next waiting receiver takes them on.
            if deliveries.count >= Int(request.batchSize) { broker.arrivals.handOn(topic.name, group: group.name) }
            let remaining = pollEnd - .now
            if !deliveries.isEmpty || remaining <= .zero || Task.isCancelled { return (deliveries, invisible) }
            var wait = remaining
            if let visible = await broker.consumption.nextVisibility(group: group, topic: topic.name, queueIds: queueIds) {
                wait = min(wait, visible + .milliseconds(5))
            }
            let woken = await broker.arrivals.wait(for: topic.name, as: .group(group.name), since: epoch, timeout: wait)
            if Task.isCancelled {
                // The caller is gone: a scan now would hand messages to a dead stream, invisible
                // to everyone until their invisible duration passed. A wake-up meant for this
                // receiver goes to the next one.
                if woken { broker.arrivals.handOn(topic.name, group: group.name) }
                return ([], invisible)
            }
        }
    }

    /// Every readable queue (below the topic's read queue count), starting with the requested one
    /// so that concurrent receivers spread out. FIFO order needs no queue pinning: the engine
    /// keeps one message per message group in flight whichever queue a receive starts from.
    private func queueOrder(topic: TopicConfig, requested: Int32) -> [Int32] {
        let all = Array(0..<topic.readQueues)
        guard requested >= 0, requested < topic.readQueues else { return all.shuffled() }
        return Array(all[Int(requested)...] + all[..<Int(requested)])
    }

    public func ackMessage(request: Apache_Rocketmq_V2_AckMessageRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_AckMessageResponse {
        await answer({ .init(status: $0) }) { () throws(BrokerError) in
            try await broker.waitForWriteHold()
            _ = try clientId(context)
            let group = request.group?.name ?? ""
            let topic = request.topic?.name ?? ""
            guard !request.entries.isEmpty else { throw .badRequest("AckMessage needs at least one entry") }
            // Entries whose handle parses are acked in one engine call (one journal append).
            var errors = [BrokerError?](repeating: nil, count: request.entries.count)
            var parsed: [(index: Int, topic: String, handle: ReceiptHandle)] = []
            for (index, entry) in request.entries.enumerated() {
                do throws(BrokerError) {
                    let handle = try ReceiptHandle(parsing: entry.receiptHandle, brokerName: broker.configuration.brokerName)
                    parsed.append((index, handle.topic(named: topic, group: group), handle))
                } catch {
                    errors[index] = error
                }
            }
            if !parsed.isEmpty {
                let outcomes = try await broker.consumption.ack(group: group, entries: parsed.map { ($0.topic, $0.handle) })
                for (entry, outcome) in zip(parsed, outcomes) { errors[entry.index] = outcome }
            }
            let results = zip(request.entries, errors).map { entry, error in
                Apache_Rocketmq_V2_AckMessageResultEntry(messageId: entry.messageId, receiptHandle: entry.receiptHandle, status: error?.status ?? .ok)
            }
            let failures = results.filter { $0.status?.code != .ok }
            // An ack can release the next message of a FIFO message group: wake that topic's long
            // polls. Other groups' acks release nothing, and waking every poller per ack is costly.
            if failures.count < results.count, broker.groups[group]?.fifo == true { broker.arrivals.signal(topic) }
            let status: Apache_Rocketmq_V2_Status
            if failures.isEmpty {
                status = .ok
            } else if results.count == 1, let only = failures.first?.status {
                status = only
            } else {
                status = .init(code: .multipleResults, message: "\(failures.count) of \(results.count) acks failed")
            }
            return .init(status: status, entries: results)
        }
    }

    public func changeInvisibleDuration(request: Apache_Rocketmq_V2_ChangeInvisibleDurationRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_ChangeInvisibleDurationResponse {
        await answer({ .init(status: $0) }) { () throws(BrokerError) in
            try await broker.waitForWriteHold()
            _ = try clientId(context)
            let configuration = broker.configuration
            let duration = request.invisibleDuration?.duration ?? .zero
            guard duration >= .zero, duration <= configuration.maxInvisibleDuration else {
                throw .illegalInvisibleTime("invisible duration \(duration) is outside 0...\(configuration.maxInvisibleDuration)")
            }
            let handle = try ReceiptHandle(parsing: request.receiptHandle, brokerName: configuration.brokerName)
            let group = request.group?.name ?? ""
            let renewed = try await broker.consumption.changeInvisibleDuration(
                group: group, topic: handle.topic(named: request.topic?.name ?? "", group: group), handle: handle, duration: duration)
            // A shorter invisible duration can make a message due before the long polls' wake-up.
            broker.arrivals.signal(request.topic?.name ?? "")
            return .init(status: .ok, receiptHandle: renewed.description)
        }
    }

    public func forwardMessageToDeadLetterQueue(request: Apache_Rocketmq_V2_ForwardMessageToDeadLetterQueueRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_ForwardMessageToDeadLetterQueueResponse {
        await answer({ .init(status: $0) }) { () throws(BrokerError) in
            try await broker.waitForWriteHold()
            _ = try clientId(context)
            let handle = try ReceiptHandle(parsing: request.receiptHandle, brokerName: broker.configuration.brokerName)
            let group = request.group?.name ?? ""
            try await broker.consumption.forwardToDeadLetter(group: group, topic: handle.topic(named: request.topic?.name ?? "", group: group), handle: handle)
            return .init(status: .ok)
        }
    }

    // MARK: Offset-based consumption

    public func pullMessage(
        request: Apache_Rocketmq_V2_PullMessageRequest,
        response: ResponseWriter<Apache_Rocketmq_V2_PullMessageResponse>,
        context: ServerContext
    ) async throws {
        let namespace = namespace(context)
        let result: QueueReadResult
        do {
            result = try await pull(request, context: context)
        } catch {
            var answer: [Apache_Rocketmq_V2_PullMessageResponse] = [.init(content: .status(error.status))]
            // As RocketMQ does, an offset outside the queue is answered with where to pull
            // instead (its first offset, or its end): a consumer that fell behind retention, or
            // came over from a slave that was behind, carries on from there.
            if case .illegalOffset = error, let (topic, queueId) = try? queue(request.messageQueue) {
                let range = broker.store.offsetRange(topic: topic.name, queueId: queueId)
                answer.append(.init(content: .nextOffset(request.offset < range.lowerBound ? range.lowerBound : range.upperBound)))
            }
            try await response.write(contentsOf: answer)
            return
        }
        if result.messages.isEmpty {
            try await response.write(.init(content: .status(.init(code: .messageNotFound, message: "no new message"))))
        } else {
            var batch: [Apache_Rocketmq_V2_PullMessageResponse] = [.init(content: .status(.ok))]
            for message in result.messages {
                let proto = message.toProtocol(namespace: namespace, receiptHandle: nil, invisibleDuration: nil, deliveryAttempt: nil)
                batch.append(.init(content: .message(proto)))
            }
            batch.append(.init(content: .nextOffset(result.nextOffset)))
            try await response.write(contentsOf: batch)
            return
        }
        try await response.write(.init(content: .nextOffset(result.nextOffset)))
    }

    private func pull(_ request: Apache_Rocketmq_V2_PullMessageRequest, context: ServerContext) async throws(BrokerError) -> QueueReadResult {
        _ = try clientId(context)
        _ = try broker.group(named: request.group?.name ?? "")
        let (topic, queueId) = try queue(request.messageQueue)
        guard topic.isReadable(queue: queueId) else {
            throw .forbidden(topic.isReadable
                ? "queue \(queueId) of topic \(topic.name) is not readable: the topic has \(topic.readQueues) read queues"
                : "topic \(topic.name) is not readable on broker \(broker.configuration.brokerName)")
        }
        try checkBatchSize(request.batchSize)
        try checkOffset(request.offset, topic: topic, queueId: queueId)
        let filter = try MessageFilter(request.filterExpression)
        var pollFor = min(request.longPollingTimeout?.duration ?? .zero, broker.configuration.maxLongPollingTimeout)
        if let deadline = context.deadline { pollFor = min(pollFor, max(.zero, deadline - .now - .milliseconds(200))) }
        let pollEnd = ContinuousClock.now + pollFor
        // Each wake-up reads on from where the last read stopped: what it passed over (messages
        // the filter refused) is not read and refused again.
        var from = request.offset
        while true {
            let epoch = broker.arrivals.beginPoll(topic.name, as: .queue(queueId))
            defer { broker.arrivals.endPoll() }
            let result: QueueReadResult
            do {
                result = try broker.store.messages(
                    topic: topic.name, queueId: queueId, from: from, maxCount: Int(request.batchSize),
                    tagFilter: filter.tags, where: filter.propertyCheck)
            } catch {
                throw BrokerError(error)
            }
            let remaining = pollEnd - .now
            if !result.messages.isEmpty || remaining <= .zero || Task.isCancelled { return result }
            from = max(from, result.nextOffset)
            _ = await broker.arrivals.wait(for: topic.name, as: .queue(queueId), since: epoch, timeout: remaining)
        }
    }

    public func updateOffset(request: Apache_Rocketmq_V2_UpdateOffsetRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_UpdateOffsetResponse {
        await answer({ .init(status: $0) }) { () throws(BrokerError) in
            try await broker.waitForWriteHold()
            _ = try clientId(context)
            let group = try broker.group(named: request.group?.name ?? "")
            let (topic, queueId) = try queue(request.messageQueue)
            try checkOffset(request.offset, topic: topic, queueId: queueId)
            try await broker.consumption.setConsumerOffset(group: group.name, topic: topic.name, queueId: queueId, offset: request.offset)
            return .init(status: .ok)
        }
    }

    public func getOffset(request: Apache_Rocketmq_V2_GetOffsetRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_GetOffsetResponse {
        await answer({ .init(status: $0) }) { () throws(BrokerError) in
            _ = try clientId(context)
            let group = try broker.group(named: request.group?.name ?? "")
            let (topic, queueId) = try queue(request.messageQueue)
            guard let offset = await broker.consumption.consumerOffset(group: group.name, topic: topic.name, queueId: queueId) else {
                return .init(status: .init(code: .offsetNotFound, message: "group \(group.name) has no offset on \(topic.name)/\(queueId)"))
            }
            return .init(status: .ok, offset: offset)
        }
    }

    public func queryOffset(request: Apache_Rocketmq_V2_QueryOffsetRequest, context: ServerContext) async throws -> Apache_Rocketmq_V2_QueryOffsetResponse {
        await answer({ .init(status: $0) }) { () throws(BrokerError) in
            _ = try clientId(context)
            let (topic, queueId) = try queue(request.messageQueue)
            let store = broker.store
            switch request.queryOffsetPolicy {
            case .beginning: return .init(status: .ok, offset: store.minOffset(topic: topic.name, queueId: queueId))
            case .end: return .init(status: .ok, offset: store.maxOffset(topic: topic.name, queueId: queueId))
            case .timestamp:
                guard let timestamp = request.timestamp else { throw .badRequest("the TIMESTAMP policy needs a timestamp") }
                do throws(StoreError) {
                    return .init(status: .ok, offset: try store.queueOffset(topic: topic.name, queueId: queueId, forTimestamp: timestamp.milliseconds))
                } catch {
                    throw BrokerError(error)
                }
            case .UNRECOGNIZED(let value): throw .badRequest("unknown query offset policy \(value)")
            }
        }
    }

    private func checkBatchSize(_ size: Int32) throws(BrokerError) {
        let limit = broker.configuration.maxReceiveBatchSize
        guard size > 0, size <= limit else { throw .badRequest("batch size \(size) is outside 1...\(limit)") }
    }

    private func checkOffset(_ offset: Int64, topic: TopicConfig, queueId: Int32) throws(BrokerError) {
        let maxOffset = broker.store.maxOffset(topic: topic.name, queueId: queueId)
        guard offset >= 0, offset <= maxOffset else {
            throw .illegalOffset("offset \(offset) is outside 0...\(maxOffset) of \(topic.name)/\(queueId)")
        }
    }

    private func queue(_ queue: Apache_Rocketmq_V2_MessageQueue?) throws(BrokerError) -> (TopicConfig, Int32) {
        let topic = try broker.topic(named: queue?.topic?.name ?? "")
        let queueId = queue?.id ?? -1
        guard queueId >= 0, queueId < topic.queueCount else { throw .badRequest("topic \(topic.name) has no queue \(queueId)") }
        return (topic, queueId)
    }

    // MARK: Telemetry

    /// The settings handshake: each client `Settings` is validated, remembered and answered with
    /// the broker's view merged in (body size limit, retry policy, FIFO flag, batch size, long polling).
    public func telemetry(
        requests: RequestStream<Apache_Rocketmq_V2_TelemetryCommand>,
        response: ResponseWriter<Apache_Rocketmq_V2_TelemetryCommand>,
        context: ServerContext
    ) async throws {
        let id: String
        do {
            id = try clientId(context)
        } catch {
            try await response.write(.init(status: error.status))
            return
        }
        // Everything written to the client goes through one stream, drained by one task: the
        // answers to its settings and the commands the broker starts (check-backs).
        let (outbound, continuation) = AsyncStream.makeStream(of: Apache_Rocketmq_V2_TelemetryCommand.self, bufferingPolicy: .bufferingNewest(1024))
        let token = broker.clients.openTelemetry(clientId: id, outbound: continuation)
        defer {
            broker.clients.closeTelemetry(clientId: id, token: token)
            continuation.finish()
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await command in outbound { try await response.write(command) }
            }
            for try await command in requests {
                guard case .settings(let settings)? = command.command else { continue }
                do {
                    let merged = try merge(settings)
                    broker.clients.updateSettings(clientId: id, settings: merged, group: merged.subscriptionGroupName)
                    continuation.yield(.init(status: .ok, command: .settings(merged)))
                } catch let error as BrokerError {
                    continuation.yield(.init(status: error.status))
                }
            }
            // The client ended its side: send what is queued, then end ours.
            continuation.finish()
            try await group.waitForAll()
        }
    }

    /// The broker's answer to a client's settings.
    func merge(_ settings: Apache_Rocketmq_V2_Settings) throws(BrokerError) -> Apache_Rocketmq_V2_Settings {
        var merged = settings
        switch settings.pubSub {
        case .publishing(var publishing)?:
            publishing.maxBodySize = Int32(broker.configuration.maxBodySize)
            publishing.validateMessageType = true
            merged.pubSub = .publishing(publishing)
        case .subscription(var subscription)?:
            let group = try broker.group(named: subscription.group?.name ?? "", fifo: subscription.fifo)
            for entry in subscription.subscriptions {
                _ = try broker.topic(named: entry.topic?.name ?? "")
                _ = try MessageFilter(entry.expression)
            }
            subscription.fifo = group.fifo
            subscription.receiveBatchSize = 32
            subscription.longPollingTimeout = Google_Protobuf_Duration(broker.configuration.maxLongPollingTimeout)
            merged.pubSub = .subscription(subscription)
            merged.backoffPolicy = Apache_Rocketmq_V2_RetryPolicy(
                maxAttempts: group.maxDeliveryAttempts,
                strategy: .customizedBackoff(.init(next: RetryLadder.durations.map(Google_Protobuf_Duration.init))))
        case nil:
            throw .badRequest("settings need publishing or subscription")
        }
        return merged
    }
}

/// RocketMQ's redelivery back-off: 1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h.
enum RetryLadder {
    static let durations: [Duration] = [1, 5, 10, 30, 60, 120, 180, 240, 300, 360, 420, 480, 540, 600, 1200, 1800, 3600, 7200].map { .seconds($0) }
}

extension Apache_Rocketmq_V2_Settings {
    var subscriptionGroupName: String? {
        if case .subscription(let subscription)? = pubSub { return subscription.group?.name }
        return nil
    }
}
