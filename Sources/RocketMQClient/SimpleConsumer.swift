import Synchronization

/// Pop-style consumption under your control: ``receive(maxMessages:invisibleDuration:)`` hands
/// out messages that stay invisible to the rest of the group for `invisibleDuration`;
/// ``ack(_:)`` removes them for good, ``changeInvisibleDuration(_:to:)`` hides them longer
/// (or shorter, to have them redelivered). Unacked messages come back after their invisible
/// duration with ``ReceivedMessage/deliveryAttempt`` incremented.
///
/// Several consumers of one group share the messages (clustering). Thread-safe.
public final class SimpleConsumer: Sendable {
    let session: ClientSession
    /// The consumer group.
    public let group: String
    /// How long a receive waits for messages on the broker when none are ready. Default 5 s.
    public let awaitDuration: Duration
    private let subscriptions: [(topic: String, filter: FilterExpression)]
    // A lock, not an actor: it only spreads receives over topics and queues.
    private let cursor = Mutex<Int>(Int.random(in: 0..<1024))

    private init(session: ClientSession, group: String, subscriptions: [String: FilterExpression], awaitDuration: Duration) {
        self.session = session
        self.group = group
        self.subscriptions = subscriptions.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        self.awaitDuration = awaitDuration
    }

    /// Starts a consumer of `group` for `subscriptions` (topic → filter).
    public static func start(
        configuration: ClientConfiguration, group: String, subscriptions: [String: FilterExpression],
        awaitDuration: Duration = .seconds(5)
    ) async throws(RocketMQError) -> SimpleConsumer {
        guard !group.isEmpty else { throw .invalidArgument("the consumer group is empty") }
        guard !subscriptions.isEmpty else { throw .invalidArgument("subscribe to at least one topic") }
        let role = ClientRole(clientType: .simpleConsumer, group: group, subscriptions: subscriptions)
        let session = ClientSession(configuration: configuration, role: role)
        do {
            try await session.start(topics: Array(subscriptions.keys))
        } catch {
            await session.shutdown()
            throw error
        }
        return SimpleConsumer(session: session, group: group, subscriptions: subscriptions, awaitDuration: awaitDuration)
    }

    /// Receives up to `maxMessages` (1...32) messages from one queue of a subscribed topic,
    /// waiting up to ``awaitDuration`` when none is ready. Returns `[]` when none arrived.
    public func receive(maxMessages: Int, invisibleDuration: Duration) async throws(RocketMQError) -> [ReceivedMessage] {
        try session.ensureOpen()
        guard (1...32).contains(maxMessages) else { throw .invalidArgument("maxMessages \(maxMessages) is outside 1...32") }
        let turn = cursor.withLock { next in
            defer { next &+= 1 }
            return next
        }
        let subscription = subscriptions[turn % subscriptions.count]
        let route = try await session.route(for: subscription.topic)
        let queues = route.readableQueues
        guard !queues.isEmpty else { throw .noQueue(topic: subscription.topic, reason: "no readable queue in its route") }
        let queue = queues[(turn / subscriptions.count) % queues.count]
        let call = ReceiveCall(session: session, group: group, filter: subscription.filter)
        do throws(RocketMQError) {
            return try await call.run(queue: queue, batchSize: maxMessages, invisibleDuration: invisibleDuration, longPolling: awaitDuration)
        } catch {
            if error.isRetryable { session.invalidateRoute(of: subscription.topic) }
            throw error
        }
    }

    /// Acknowledges `message`: it will not be delivered to this group again.
    public func ack(_ message: ReceivedMessage) async throws(RocketMQError) {
        try session.ensureOpen()
        try await session.ack(message, group: group)
    }

    /// Makes `message` invisible for `duration` from now and stores the renewed receipt handle
    /// in it (the old one is no longer valid).
    public func changeInvisibleDuration(_ message: inout ReceivedMessage, to duration: Duration) async throws(RocketMQError) {
        try session.ensureOpen()
        message.receiptHandle = try await session.changeInvisibleDuration(message, group: group, to: duration)
    }

    /// Ends Telemetry and tells the brokers the consumer left.
    public func shutdown() async {
        await session.shutdown()
    }
}
