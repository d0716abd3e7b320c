/// Consumes by calling your handler for each message.
///
/// The consumer asks each broker for the group's queues (`QueryAssignment`: each queue for a FIFO
/// group, the broker as a whole for any other), long-polls each assignment, and runs the handler with ``PushConsumerOptions/concurrency`` at most. `.success` acks
/// the message; `.failure` hides it for the next step of the server's back-off ladder, and once
/// its delivery attempts reach the group's maximum it goes to `%DLQ%<group>`. Messages of one
/// message group are handled strictly one after another, in order. At most
/// ``PushConsumerOptions/cacheCapacity`` messages wait in memory; receiving pauses beyond that.
///
/// ```swift
/// let consumer = try await PushConsumer.start(
///     configuration: configuration, group: "billing", subscriptions: ["orders": .all]
/// ) { message in
///     print(message.messageId)
///     return .success
/// }
/// ```
public final class PushConsumer: Sendable {
    let session: ClientSession
    let engine: PushConsumerEngine
    /// The consumer group.
    public let group: String

    private init(session: ClientSession, engine: PushConsumerEngine, group: String) {
        self.session = session
        self.engine = engine
        self.group = group
    }

    /// Starts consuming `subscriptions` (topic → filter) for `group`; `handler` runs on the
    /// consumer's tasks until ``shutdown()``.
    public static func start(
        configuration: ClientConfiguration, group: String, subscriptions: [String: FilterExpression],
        options: PushConsumerOptions = PushConsumerOptions(),
        handler: @escaping @Sendable (ReceivedMessage) async -> ConsumeResult
    ) async throws(RocketMQError) -> PushConsumer {
        guard !group.isEmpty else { throw .invalidArgument("the consumer group is empty") }
        guard !subscriptions.isEmpty else { throw .invalidArgument("subscribe to at least one topic") }
        let session = ClientSession(
            configuration: configuration, role: ClientRole(clientType: .pushConsumer, group: group, subscriptions: subscriptions))
        let engine = PushConsumerEngine(session: session, group: group, subscriptions: subscriptions, options: options, handler: handler)
        // The server may ask the consumer to verify a message: the handler decides, nothing is acked.
        await session.setVerifier { message in await handler(message) == .success }
        do {
            try await session.start(topics: Array(subscriptions.keys))
            try await engine.start()
        } catch {
            await engine.stop()
            await session.shutdown()
            throw error
        }
        return PushConsumer(session: session, engine: engine, group: group)
    }

    /// Messages received and not yet handled (never more than the cache capacity).
    public var cachedMessageCount: Int {
        get async { await engine.cache.cached }
    }

    /// Stops receiving, waits for the handlers to finish the cached messages, then ends the session.
    public func shutdown() async {
        await engine.stop()
        await session.shutdown()
    }
}
