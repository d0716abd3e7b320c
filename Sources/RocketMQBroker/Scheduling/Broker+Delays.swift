import Foundation
import RocketMQNameServer
import RocketMQStore

/// Delay messages: the timer that copies them to their queues when due, and recalling them
/// (`RecallMessage`) before that. See `DelayService` for how they are stored.
extension Broker {
    /// Longest the timer sleeps: a message scheduled meanwhile for an earlier time waits at most
    /// this long past its due time.
    static let delayTimerTick: Duration = .milliseconds(100)

    /// Starts the timer (at init): while this broker is a master taking writes, it copies due
    /// delay messages to their queues. Stopped by `shutdown()`.
    func startDelayTimer() {
        let task = Task { [weak self] in
            var lastMark = ContinuousClock.now
            // The broker is held only during a turn, so one dropped without `shutdown()` goes.
            while !Task.isCancelled, let pause = await self?.delayTimerTurn(lastMark: &lastMark) {
                if pause > .zero { try? await Task.sleep(for: pause) }
            }
        }
        delayTimer.withLock { $0 = task }
    }

    /// Copies what is due and saves the mark about once a second; returns how long to sleep.
    private func delayTimerTurn(lastMark: inout ContinuousClock.Instant) async -> Duration {
        // A slave, a master holding its writes or a superseded one copies nothing: its appends
        // would be refused (the promoted master delivers them). A slave being promoted takes
        // writes (`isReplicaLog` false) only once its schedule is read back from its log.
        guard !isSlave, !store.isReplicaLog, writesRefused.isEmpty else { return Self.delayTimerTick }
        // A full batch: more may be due at once.
        if await delays.deliverDue(broker: self) == DelayService.deliveryBatch { return .zero }
        if ContinuousClock.now - lastMark >= .seconds(1) {
            // Half the retention time: a segment expires no earlier than that after its records.
            // Full batches in a row for up to a timer tick, so a busy broker keeps up (thousands a
            // second) while due messages wait at most a tick more.
            let cutoff = MessageStore.nowMilliseconds() - (store.retentionPolicy.fileReservedTime / 2).wholeMilliseconds
            let budget = ContinuousClock.now + Self.delayTimerTick
            while await delays.roll(storedBefore: cutoff, broker: self) == DelayService.rollBatch, ContinuousClock.now < budget {}
            delays.saveMark()
            lastMark = .now
        }
        guard let next = delays.nextFiring else { return Self.delayTimerTick }
        return min(Self.delayTimerTick, .milliseconds(max(1, next - MessageStore.nowMilliseconds())))
    }

    func stopDelayTimer() async {
        guard let task = delayTimer.withLock({ timer in defer { timer = nil }; return timer }) else { return }
        task.cancel()
        await task.value
        if !isSlave { delays.saveMark() }
    }

    /// Delay messages waiting for their time on this broker.
    public var pendingDelayMessages: Int { delays.pendingCount }

    /// Recalls the delay message `handle` names, which must belong to `topic` on this broker and
    /// not be due yet. Recalling it again is no error. Returns the message's id.
    /// - Throws: `.notMaster` on a slave, `.badRequest` for another broker's handle,
    ///   `.topicNotFound`, `.notFound` when the message is not scheduled here or is already due
    ///   (it may have been delivered: too late to recall).
    func recall(topic: String, handle: RecallHandle) async throws(BrokerError) -> String {
        try requireMaster()
        let configuration = self.configuration
        guard handle.brokerName == configuration.brokerName else {
            throw .badRequest("the recall handle names broker \(handle.brokerName), this is \(configuration.brokerName): recall through a NameServer endpoint or at that broker")
        }
        // Looked up, never auto-created: a recall names a topic that already holds the message.
        guard topics[topic] != nil else { throw .topicNotFound(topic) }
        guard handle.queueId == 0 else {
            throw .notFound("no delay message \(handle.messageId) of topic \(topic) is scheduled under this handle (issued by an older broker build?)")
        }
        try await delays.recall(queueOffset: handle.offset, messageId: handle.messageId, topic: topic, broker: self)
        logger.info("delay message recalled", metadata: [
            "topic": "\(topic)", "scheduledOffset": "\(handle.offset)", "messageId": "\(handle.messageId)",
        ])
        return handle.messageId
    }
}
