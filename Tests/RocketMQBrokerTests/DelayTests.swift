import Foundation
@testable import RocketMQBroker
import RocketMQNameServer
@testable import RocketMQStore
import Testing

@Suite("Delay messages: scheduled apart, delivered when due, recallable until then")
struct DelayTests {
    /// Schedules `body` on `topic`'s queue 2, due at `due`; returns its recall handle.
    private func schedule(_ broker: Broker, topic: String, body: String, due: Int64) async throws -> RecallHandle {
        let id = "id-\(body)-\(UUID().uuidString)"
        let message = MessageToAppend(
            topic: topic, queueId: 2, body: Array(body.utf8),
            properties: [MessageProperty.uniqueKey: id, StoredProperty.deliveryTime: String(due)], bornTimestamp: MessageStore.nowMilliseconds())
        let result = try await broker.delays.schedule(message, due: due, broker: broker)
        return RecallHandle(brokerName: broker.configuration.brokerName, queueId: 0, offset: result.queueOffset, deliveryTime: due, messageId: id)
    }

    /// What queue 2 of `topic` holds, read as a pull consumer reads it.
    private func queued(_ broker: Broker, _ topic: String) throws -> [StoredMessage] {
        try broker.store.messages(topic: topic, queueId: 2, from: 0, maxCount: 100).messages
    }

    /// Waits (at most `seconds`) until queue 2 of `topic` holds `count` messages.
    private func waitForQueued(_ broker: Broker, _ topic: String, count: Int, seconds: Double = 10) async throws -> [StoredMessage] {
        let deadline = Date() + seconds
        var found = try queued(broker, topic)
        while found.count < count, Date() < deadline {
            try await Task.sleep(for: .milliseconds(20))
            found = try queued(broker, topic)
        }
        return found
    }

    /// Waits (at most 10 s) until no delay message is pending or being settled.
    private func settled(_ broker: Broker) async throws -> Bool {
        let deadline = Date() + 10
        while broker.pendingDelayMessages > 0, Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        return broker.pendingDelayMessages == 0
    }

    @Test("a delay message reaches its queue only when due, so pull reads see it no earlier, with its id and timestamp")
    func deliveredWhenDue() async throws {
        try await withBroker { broker in
            _ = try broker.topic(named: "t")
            let due = MessageStore.nowMilliseconds() + 1500
            let handle = try await schedule(broker, topic: "t", body: "later", due: due)
            #expect(try queued(broker, "t").isEmpty, "a delay message is in its queue before it is due")
            #expect(broker.pendingDelayMessages == 1)
            let delivered = try await waitForQueued(broker, "t", count: 1)
            let message = try #require(delivered.first)
            #expect(delivered.count == 1)
            #expect(message.storeTimestamp >= due, "copied \(due - message.storeTimestamp) ms before its time")
            #expect(message.messageId == handle.messageId)
            #expect(message.deliveryTime == due)
            #expect(message.properties[StoredProperty.realTopic] == nil && message.properties[StoredProperty.realQueueId] == nil)
            #expect(String(decoding: message.body, as: UTF8.self) == "later")
            // Settled once its op record is written, just after the copy.
            #expect(try await settled(broker))
            // Pop consumers get it at once now, not held again.
            let group = GroupConfig(name: "g", maxDeliveryAttempts: 3)
            let received = try await broker.consumption.receive(
                group: group, topic: "t", queueIds: [2], batchSize: 10, invisibleDuration: .seconds(30), filter: .all)
            #expect(received.map(\.text) == ["later"])
            // Due now: too late to recall.
            await #expect {
                _ = try await broker.recall(topic: "t", handle: handle)
            } throws: { error in
                guard case BrokerError.notFound(let why) = error else { return false }
                return why.contains("too late")
            }
        }
    }

    @Test("recalls: a recalled message never reaches its queue, also after a restart; repeated, wrong and late recalls")
    func recallSurvivesARestart() async throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "delay-test-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // Room for two broker starts before it is due on a slow machine.
        let due = MessageStore.nowMilliseconds() + 5000
        var broker = try Broker(configuration: testConfiguration(directory))
        _ = try broker.topic(named: "t")
        let recalled = try await schedule(broker, topic: "t", body: "recalled", due: due)
        let kept = try await schedule(broker, topic: "t", body: "kept", due: due)
        var otherId = recalled
        otherId.messageId = kept.messageId
        await #expect(throws: BrokerError.self) { _ = try await broker.recall(topic: "t", handle: otherId) }
        var otherBroker = recalled
        otherBroker.brokerName = "elsewhere"
        await #expect(throws: BrokerError.self) { _ = try await broker.recall(topic: "t", handle: otherBroker) }
        await #expect(throws: BrokerError.self) { _ = try await broker.recall(topic: "nowhere", handle: recalled) }
        #expect(try await broker.recall(topic: "t", handle: recalled) == recalled.messageId)
        #expect(try await broker.recall(topic: "t", handle: recalled) == recalled.messageId)  // again: no error
        #expect(broker.pendingDelayMessages == 1)
        #expect(RecallHandle(parsing: recalled.description) == recalled)
        #expect(RecallHandle(parsing: "recall1:a:b:0:0:x") == nil)
        let odd = RecallHandle(brokerName: "zone:a%1", queueId: 3, offset: 7, deliveryTime: 9, messageId: "id:with%3Acolons")
        #expect(RecallHandle(parsing: odd.description) == odd)
        await broker.shutdown()

        // Read back from the log: one pending, one recalled (a repeated recall still answers OK).
        broker = try Broker(configuration: testConfiguration(directory))
        #expect(broker.pendingDelayMessages == 1)
        #expect(try await broker.recall(topic: "t", handle: recalled) == recalled.messageId)
        let delivered = try await waitForQueued(broker, "t", count: 1)
        #expect(delivered.map { String(decoding: $0.body, as: UTF8.self) } == ["kept"])
        #expect(MessageStore.nowMilliseconds() >= due)
        // Past the due time: the recalled one stays out of the queue.
        try await Task.sleep(for: .milliseconds(300))
        #expect(try queued(broker, "t").count == 1)
        await broker.shutdown()

        // Delivered ones are settled by their op record: not delivered again after a restart.
        broker = try Broker(configuration: testConfiguration(directory))
        #expect(broker.pendingDelayMessages == 0)
        try await Task.sleep(for: .milliseconds(300))
        #expect(try queued(broker, "t").count == 1)
        await broker.shutdown()
    }

    @Test("pending delay messages survive a restart and are delivered once, in due order")
    func pendingSurviveARestart() async throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "delay-test-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let now = MessageStore.nowMilliseconds()
        var broker = try Broker(configuration: testConfiguration(directory))
        _ = try broker.topic(named: "t")
        // Scheduled out of due order; one already delivered before the restart.
        _ = try await schedule(broker, topic: "t", body: "second", due: now + 2200)
        _ = try await schedule(broker, topic: "t", body: "first", due: now + 1800)
        _ = try await schedule(broker, topic: "t", body: "soon", due: now + 200)
        #expect(try await waitForQueued(broker, "t", count: 1).count == 1)
        await broker.shutdown()

        broker = try Broker(configuration: testConfiguration(directory))
        #expect(broker.pendingDelayMessages == 2)
        let delivered = try await waitForQueued(broker, "t", count: 3)
        #expect(delivered.map { String(decoding: $0.body, as: UTF8.self) } == ["soon", "first", "second"])
        for message in delivered { #expect(message.storeTimestamp >= message.deliveryTime ?? .max) }
        await broker.shutdown()
    }

    @Test("a message delivered before a restart stays delivered over the next ones while an older one is pending")
    func deliveredStaysDeliveredOverTwoRestarts() async throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "delay-test-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var broker = try Broker(configuration: testConfiguration(directory))
        _ = try broker.topic(named: "t")
        _ = try await schedule(broker, topic: "t", body: "much-later", due: MessageStore.nowMilliseconds() + 600_000)
        _ = try await schedule(broker, topic: "t", body: "soon", due: MessageStore.nowMilliseconds() + 100)
        #expect(try await waitForQueued(broker, "t", count: 1).count == 1)
        await broker.shutdown()
        // Each start reads back from the mark the last one saved.
        for _ in 0..<2 {
            broker = try Broker(configuration: testConfiguration(directory))
            #expect(broker.pendingDelayMessages == 1)
            try await Task.sleep(for: .milliseconds(300))
            #expect(try queued(broker, "t").count == 1, "a delivered delay message was delivered again after a restart")
            await broker.shutdown()
        }
    }

    @Test("the saved mark is the oldest entry not settled: it stays on a recalled one for an hour past its due time, then moves on")
    func markFollowsTheOldestUnsettledEntry() async throws {
        try await withBroker { broker in
            _ = try broker.topic(named: "t")
            let later = MessageStore.nowMilliseconds() + 600_000
            let first = try await schedule(broker, topic: "t", body: "first", due: later)
            _ = try await schedule(broker, topic: "t", body: "soon", due: MessageStore.nowMilliseconds() + 50)
            #expect(try await waitForQueued(broker, "t", count: 1).count == 1)
            while broker.pendingDelayMessages > 1 { try await Task.sleep(for: .milliseconds(10)) }
            // Scheduled after the op record that settled "soon": its op offset is past it.
            let second = try await schedule(broker, topic: "t", body: "second", due: later + 1)
            #expect(broker.delays.mark() == DelayService.Mark(scheduleFrom: first.offset, opsFrom: 0))
            _ = try await broker.recall(topic: "t", handle: first)
            #expect(broker.delays.mark() == DelayService.Mark(scheduleFrom: first.offset, opsFrom: 0), "a recall remembered moved the mark")
            // Forgotten an hour past its due time: the mark moves to the next one.
            let forgotten = later + DelayService.recallMemoryMilliseconds
            #expect(broker.delays.mark(now: forgotten) == DelayService.Mark(scheduleFrom: second.offset, opsFrom: 1))
            _ = try await broker.recall(topic: "t", handle: second)
            #expect(broker.delays.mark(now: forgotten) == DelayService.Mark(scheduleFrom: second.offset, opsFrom: 1))
            // Nothing left: the queues' ends.
            #expect(broker.delays.mark(now: forgotten + 1) == DelayService.Mark(scheduleFrom: 3, opsFrom: 3))
        }
    }

    @Test("a message whose topic is missing when due is tried again, and lands in a queue the topic has")
    func missingTopicIsRetried() async throws {
        try await withBroker { broker in
            _ = try broker.topic(named: "t")  // 8 queues; the message goes to queue 2
            let handle = try await schedule(broker, topic: "t", body: "x", due: MessageStore.nowMilliseconds() + 1000)
            // The topic's config gone (as on a promoted slave before the master's topics are
            // copied over; a deleted topic drops its delay messages, see below): tried while it
            // is missing, then once it is back, now with 2 queues.
            _ = try broker.topics.remove("t")
            try await Task.sleep(for: .milliseconds(1600))
            #expect(broker.pendingDelayMessages == 1, "dropped at the first failed try")
            try broker.upsertTopic(TopicConfig(name: "t", queueCount: 2))
            #expect(try await settled(broker))
            let delivered = try broker.store.messages(topic: "t", queueId: 0, from: 0, maxCount: 10).messages
            #expect(delivered.map(\.messageId) == [handle.messageId])
            #expect(broker.delays.deliveredCount == 1)
        }
    }

    @Test("a deleted topic's delay messages go with it: never delivered to a topic created again under the name")
    func deletedTopicDropsItsDelays() async throws {
        try await withBroker { broker in
            _ = try broker.topic(named: "t")
            let due = MessageStore.nowMilliseconds() + 800
            _ = try await schedule(broker, topic: "t", body: "before", due: due)
            try broker.deleteTopic("t")
            try broker.upsertTopic(TopicConfig(name: "t", queueCount: 8))
            let after = try await schedule(broker, topic: "t", body: "after", due: due)
            #expect(broker.pendingDelayMessages == 2)
            #expect(try await settled(broker))
            #expect(try queued(broker, "t").map(\.messageId) == [after.messageId])
            #expect(broker.delays.deliveredCount == 1)
        }
    }

    @Test("retention keeps the segment of a delay message not due yet however old it is, and lets it go once delivered")
    func retentionKeepsPendingMessages() async throws {
        try await withBroker(smallSegments) { broker in
            _ = try broker.topic(named: "t")
            let filler = String(repeating: "x", count: 900)
            for i in 0..<8 { try await send(broker, topic: "t", body: filler + "\(i)") }
            // Far ahead: delivered below when the test says, not by the timer meanwhile.
            let due = MessageStore.nowMilliseconds() + 600_000
            let handle = try await schedule(broker, topic: "t", body: "kept", due: due)
            for i in 0..<12 { try await send(broker, topic: "t", body: filler + "\(i)") }
            broker.delays.saveMark()
            #expect(broker.pendingDelayMessages == 1)
            let scheduledAt = try #require(broker.store.physicalOffset(topic: DelayService.scheduleTopic, queueId: 0, at: handle.offset))
            let segments = broker.store.commitLog.segmentList
            let holder = try #require(segments.firstIndex { $0.end > scheduledAt })
            #expect(holder >= 1 && holder < segments.count - 2)
            // Every segment but the one being written is past its retention (as with a delay
            // longer than `fileReservedTime`).
            try ageSegments(broker)
            #expect(broker.store.runRetention(force: true) == holder, "only the segments before the delay message's go")
            #expect(broker.store.commitLogMinOffset == segments[holder].start)
            #expect(await broker.delays.deliverDue(now: due, broker: broker) == 1)
            #expect(try queued(broker, "t").map { String(decoding: $0.body, as: UTF8.self) } == ["kept"], "copied from its record when due")
            #expect(broker.pendingDelayMessages == 0)
            // Delivered: nothing holds its segment any more.
            broker.delays.saveMark()
            #expect(DelayService.oldestRecordNeeded(in: broker.store) == nil)
            try ageSegments(broker)
            #expect(broker.store.runRetention(force: true) > 0)
            #expect(broker.store.commitLogMinOffset > scheduledAt)
        }
    }

    /// Runs `body` on a broker whose delay timer is stopped (the test delivers and rolls itself),
    /// with topic `t` and a due time ten minutes ahead.
    private func withTimerStopped(
        _ configure: (inout BrokerConfiguration) -> Void = { _ in }, _ body: (Broker, Int64) async throws -> Void
    ) async throws {
        try await withBroker(configure) { broker in
            await broker.stopDelayTimer()
            _ = try broker.topic(named: "t")
            try await body(broker, MessageStore.nowMilliseconds() + 600_000)
        }
    }

    /// Waits (at most 10 s) until the CommitLog is flushed to its end.
    private func waitForFlush(_ broker: Broker) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while broker.store.commitLogFlushedOffset < broker.store.commitLogMaxOffset, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(broker.store.commitLogFlushedOffset == broker.store.commitLogMaxOffset)
    }

    /// Where the schedule queue's message at `offset` lies in the CommitLog.
    private func recordOffset(_ broker: Broker, _ offset: Int64) throws -> Int64 {
        try #require(broker.store.physicalOffset(topic: DelayService.scheduleTopic, queueId: 0, at: offset))
    }

    @Test("a rolled-forward message is pending once after a restart, keeps its id, and its first handle still recalls it")
    func rolledForwardSurvivesARestart() async throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "delay-test-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let due = MessageStore.nowMilliseconds() + 600_000
        var broker = try Broker(configuration: testConfiguration(directory))
        _ = try broker.topic(named: "t")
        let rolled = try await schedule(broker, topic: "t", body: "rolled", due: due)
        let recalled = try await schedule(broker, topic: "t", body: "recalled", due: due)
        let recalledEarly = try await schedule(broker, topic: "t", body: "recalled-early", due: due)
        _ = try await broker.recall(topic: "t", handle: recalledEarly)
        try await Task.sleep(for: .milliseconds(5))
        let cutoff = MessageStore.nowMilliseconds()
        try await Task.sleep(for: .milliseconds(5))
        let young = try await schedule(broker, topic: "t", body: "young", due: due + 1)
        #expect(await broker.delays.roll(storedBefore: cutoff, broker: broker) == 3)
        #expect(broker.pendingDelayMessages == 3)
        #expect(broker.store.maxOffset(topic: DelayService.scheduleTopic, queueId: 0) == 7, "three copies at the queue's end")
        let copies = try broker.store.messages(topic: DelayService.scheduleTopic, queueId: 0, from: 4, maxCount: 10).messages
        #expect(copies.map(\.body.count) == [6, 8, 0], "the recalled one's copy carries no body")
        #expect(copies.map(\.messageId) == [rolled.messageId, recalled.messageId, recalledEarly.messageId])
        #expect(copies.map { $0.properties[StoredProperty.delayOrigin] } == ["0", "1", "2"])
        #expect(try await broker.recall(topic: "t", handle: recalledEarly) == recalledEarly.messageId, "a recall rolled forward is still remembered")
        // Stopped at once: the mark still names the originals, so the start reads them and then
        // the copies that supersede them.
        await broker.shutdown()

        broker = try Broker(configuration: testConfiguration(directory))
        #expect(broker.pendingDelayMessages == 3, "an original read back beside its copy")
        #expect(try await broker.recall(topic: "t", handle: recalledEarly) == recalledEarly.messageId)
        #expect(try await broker.recall(topic: "t", handle: recalled) == recalled.messageId, "the first handle names the copy")
        #expect(broker.pendingDelayMessages == 2)
        #expect(await broker.delays.deliverDue(now: due + 1, broker: broker) == 2)
        let delivered = try queued(broker, "t")
        #expect(delivered.map { String(decoding: $0.body, as: UTF8.self) } == ["rolled", "young"])
        #expect(delivered.map(\.messageId) == [rolled.messageId, young.messageId])
        #expect(delivered.allSatisfy { $0.properties[StoredProperty.delayOrigin] == nil && $0.properties[StoredProperty.delayRolledFrom] == nil })
        #expect(delivered.first?.deliveryTime == due)
        await broker.shutdown()

        // Settled: nothing comes back, and the recall is still remembered; read back from its op
        // record, it is rolled forward too.
        broker = try Broker(configuration: testConfiguration(directory))
        #expect(broker.pendingDelayMessages == 0)
        #expect(try await broker.recall(topic: "t", handle: recalled) == recalled.messageId)
        await broker.stopDelayTimer()
        #expect(await broker.delays.roll(storedBefore: MessageStore.nowMilliseconds() + 1, broker: broker) == 2, "the two recalls")
        #expect(try await broker.recall(topic: "t", handle: recalled) == recalled.messageId)
        await broker.shutdown()
    }

    @Test("rolling forward lets retention take a long delay's old segment; the mark passes it once the copy is flushed and some seconds old")
    func rollingForwardFreesOldSegments() async throws {
        try await withTimerStopped(smallSegments) { broker, due in
            let filler = String(repeating: "x", count: 900)
            let far = try await schedule(broker, topic: "t", body: "far", due: due)
            let recalled = try await schedule(broker, topic: "t", body: "recalled", due: due)
            _ = try await broker.recall(topic: "t", handle: recalled)
            for i in 0..<12 { try await send(broker, topic: "t", body: filler + "\(i)") }
            try await Task.sleep(for: .milliseconds(5))
            let cutoff = MessageStore.nowMilliseconds()
            try await Task.sleep(for: .milliseconds(5))
            let young = try await schedule(broker, topic: "t", body: "young", due: due + 1)
            let farAt = try recordOffset(broker, far.offset)
            #expect(broker.delays.mark() == DelayService.Mark(scheduleFrom: far.offset, opsFrom: 0))
            // Until its copy is flushed and `rollGraceMilliseconds` old, the original holds the mark.
            broker.store.flushService.holdFlushes(true)
            #expect(await broker.delays.roll(storedBefore: cutoff, broker: broker) == 2, "the recall is rolled too")
            #expect(await broker.delays.roll(storedBefore: cutoff, broker: broker) == 0, "the copies are younger than the cutoff")
            #expect(broker.delays.mark().scheduleFrom == far.offset)
            let later = MessageStore.nowMilliseconds() + DelayService.rollGraceMilliseconds + 1
            #expect(broker.delays.mark(now: later).scheduleFrom == far.offset, "passed before its copy was flushed")
            broker.store.flushService.holdFlushes(false)
            try await waitForFlush(broker)
            #expect(broker.delays.mark(now: later).scheduleFrom == young.offset, "the rolled original and the old recall still hold the mark")
            broker.delays.saveMark(now: later)
            let youngAt = try recordOffset(broker, young.offset)
            try ageSegments(broker)
            #expect(broker.store.runRetention(force: true) > 0)
            #expect(broker.store.commitLogMinOffset > farAt, "the original's segment is kept")
            #expect(broker.store.commitLogMinOffset <= youngAt)
            #expect(try await broker.recall(topic: "t", handle: recalled) == recalled.messageId)
            // Delivered from its copy, under its first handle's id; the recalled one never.
            #expect(await broker.delays.deliverDue(now: due + 1, broker: broker) == 2)
            #expect(try queued(broker, "t").suffix(2).map(\.messageId) == [far.messageId, young.messageId])
        }
    }

    @Test("a deleted topic's delay messages are dropped, not rolled forward, and one rolled before the deletion is dropped when due")
    func rollingKeepsDeletedTopicsDropped() async throws {
        try await withBroker { broker in
            await broker.stopDelayTimer()
            _ = try broker.topic(named: "gone")
            _ = try broker.topic(named: "later")
            let due = MessageStore.nowMilliseconds() + 600_000
            _ = try await schedule(broker, topic: "gone", body: "a", due: due)
            _ = try await schedule(broker, topic: "later", body: "b", due: due)
            try broker.deleteTopic("gone")
            try broker.upsertTopic(TopicConfig(name: "gone", queueCount: 8))
            try await Task.sleep(for: .milliseconds(5))
            // A full disk refuses the copy and the op record of the drop: both stay pending, and
            // are taken again.
            broker.store.diskFullRatio.store(Double(0.99).bitPattern, ordering: .relaxed)
            #expect(await broker.delays.roll(storedBefore: MessageStore.nowMilliseconds(), broker: broker) == 0)
            #expect(broker.pendingDelayMessages == 2)
            broker.store.diskFullRatio.store(0, ordering: .relaxed)
            #expect(await broker.delays.roll(storedBefore: MessageStore.nowMilliseconds(), broker: broker) == 1, "only \"later\" is copied")
            #expect(broker.pendingDelayMessages == 1)
            try broker.deleteTopic("later")
            try broker.upsertTopic(TopicConfig(name: "later", queueCount: 8))
            #expect(await broker.delays.deliverDue(now: due + 1, broker: broker) == 0)
            #expect(try queued(broker, "gone").isEmpty && queued(broker, "later").isEmpty, "delivered to a topic created again")
            #expect(broker.pendingDelayMessages == 0)
        }
    }

    @Test("a message whose copy would be too large stays where it is; the ones after it are rolled forward")
    func oversizedCopyStays() async throws {
        try await withTimerStopped({ $0.store.maxMessageSize = 4096 }) { broker, due in
            func scheduled(_ size: Int) async throws -> AppendResult {
                let message = MessageToAppend(
                    topic: "t", queueId: 2, body: [UInt8](repeating: 0x41, count: size),
                    properties: [MessageProperty.uniqueKey: "fixed-length-id", StoredProperty.deliveryTime: String(due)],
                    bornTimestamp: MessageStore.nowMilliseconds())
                return try await broker.delays.schedule(message, due: due, broker: broker)
            }
            // A record 10 bytes short of the limit: its copy adds the schedule properties.
            let probe = try await scheduled(1000)
            let big = try await scheduled(1000 + 4096 - 10 - Int(probe.wroteBytes))
            #expect(big.wroteBytes == 4086)
            let small = try await scheduled(10)
            try await Task.sleep(for: .milliseconds(5))
            let cutoff = MessageStore.nowMilliseconds()
            #expect(await broker.delays.roll(storedBefore: cutoff, broker: broker) == 2, "the probe and the small one")
            #expect(await broker.delays.roll(storedBefore: cutoff, broker: broker) == 0, "taken again")
            #expect(broker.pendingDelayMessages == 3)
            try await waitForFlush(broker)
            let later = MessageStore.nowMilliseconds() + DelayService.rollGraceMilliseconds + 1
            #expect(broker.delays.mark(now: later).scheduleFrom == big.queueOffset, "the one left in place holds the mark")
            #expect(small.queueOffset == 2)
            #expect(await broker.delays.deliverDue(now: due + 1, broker: broker) == 3)
        }
    }

    @Test("a recall that cannot be recorded leaves the message due as before, whatever the timer looked at meanwhile")
    func failedRecallKeepsTheFiring() async throws {
        try await withTimerStopped { broker, due in
            let handle = try await schedule(broker, topic: "t", body: "x", due: due)
            broker.store.diskFullRatio.store(Double(0.99).bitPattern, ordering: .relaxed)  // every append refused
            let looking = Task {
                // The timer asks for the next firing all the time; it must not take a claimed
                // entry's key for a stale one.
                var asked = 0
                while !Task.isCancelled, asked < 1_000_000 {
                    _ = broker.delays.nextFiring
                    asked += 1
                    await Task.yield()
                }
            }
            for _ in 0..<500 {
                await #expect(throws: BrokerError.self) { _ = try await broker.recall(topic: "t", handle: handle) }
            }
            looking.cancel()
            await looking.value
            broker.store.diskFullRatio.store(0, ordering: .relaxed)
            #expect(broker.delays.nextFiring == due)
            #expect(await broker.delays.deliverDue(now: due + 1, broker: broker) == 1)
        }
    }

    @Test("the timer rolls forward what is pending longer than half the retention time")
    func timerRollsForward() async throws {
        try await withBroker({ $0.store.fileReservedTime = .seconds(2) }) { broker in
            _ = try broker.topic(named: "t")
            let handle = try await schedule(broker, topic: "t", body: "far", due: MessageStore.nowMilliseconds() + 600_000)
            let deadline = ContinuousClock.now + .seconds(10)
            while broker.store.maxOffset(topic: DelayService.scheduleTopic, queueId: 0) < 2, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(broker.store.maxOffset(topic: DelayService.scheduleTopic, queueId: 0) >= 2, "not rolled forward within 10 s")
            #expect(broker.pendingDelayMessages == 1)
            #expect(try await broker.recall(topic: "t", handle: handle) == handle.messageId)
            #expect(broker.pendingDelayMessages == 0)
        }
    }

    @Test("the mark's heaps shed delivered entries while an old one stays pending")
    func markHeapsStayBounded() async throws {
        try await withBroker { broker in
            // The broker's timer saves the mark about once a second, which sheds the heaps too:
            // on a slow machine it did so mid-test.
            await broker.stopDelayTimer()
            _ = try broker.topic(named: "t")
            let now = MessageStore.nowMilliseconds()
            _ = try await schedule(broker, topic: "t", body: "far", due: now + 600_000)
            for i in 0..<3000 { _ = try await schedule(broker, topic: "t", body: "\(i)", due: now + 60_000) }
            while await broker.delays.deliverDue(now: now + 60_000, broker: broker) > 0 {}
            #expect(broker.pendingDelayMessages == 1)
            #expect(broker.delays.markHeapCount > 3000, "delivered entries wait behind the far one")
            _ = broker.delays.mark(now: now)
            #expect(broker.delays.markHeapCount <= 1025)
            #expect(broker.delays.mark(now: now).scheduleFrom == 0, "the far one, scheduled first, is still the mark")
        }
    }

    @Test("the firing heap sheds the keys that rolled entries leave behind")
    func firingKeysStayBounded() async throws {
        try await withTimerStopped { broker, due in
            for i in 0..<1500 { _ = try await schedule(broker, topic: "t", body: "\(i)", due: due) }
            for _ in 0..<3 {
                let cutoff = MessageStore.nowMilliseconds() + 1
                while await broker.delays.roll(storedBefore: cutoff, broker: broker) == DelayService.rollBatch {}
            }
            #expect(broker.pendingDelayMessages == 1500)
            #expect(broker.delays.firingKeyCount == 6000, "each roll leaves the old key behind")
            #expect(broker.delays.nextFiring == due)
            #expect(broker.delays.firingKeyCount == 1500)
            #expect(await broker.delays.deliverDue(now: due + 1, broker: broker) == 256)
        }
    }

    @Test("op record bodies list the offsets they settle")
    func opBodies() {
        #expect(DelayService.opBody([3, 10, 42]) == Array("3,10,42".utf8))
        #expect(DelayService.offsets(inOpBody: Array("3,10,42".utf8)) == [3, 10, 42])
        #expect(DelayService.offsets(inOpBody: []) == [])
    }
}
