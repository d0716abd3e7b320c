import Foundation
import RocketMQAPI
@testable import RocketMQBroker
@testable import RocketMQStore
import Testing

/// A broker configuration with small files and auto-creation, for tests.
func testConfiguration(_ directory: String) -> BrokerConfiguration {
    var configuration = BrokerConfiguration(dataDirectory: directory)
    configuration.store.commitLogSegmentSize = 4 << 20
    configuration.store.indexSlots = 1024
    configuration.store.indexEntries = 4096
    configuration.autoCreateTopics = true
    configuration.autoCreateGroups = true
    return configuration
}

/// A broker on a fresh temporary data directory with small files; removed at the end.
func withBroker<R>(
    _ configure: (inout BrokerConfiguration) -> Void = { _ in },
    _ body: (Broker) async throws -> R
) async throws -> R {
    let directory = FileManager.default.temporaryDirectory.appending(path: "broker-test-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: directory) }
    var configuration = testConfiguration(directory)
    configure(&configuration)
    let broker = try Broker(configuration: configuration)
    do {
        let result = try await body(broker)
        await broker.shutdown()
        return result
    } catch {
        await broker.shutdown()
        throw error
    }
}

/// Small CommitLog segments, and retention only when a test runs it (no daily delete hour, and
/// the background check too rare to run during a test, whatever the disk's use).
func smallSegments(_ configuration: inout BrokerConfiguration) {
    configuration.store.commitLogSegmentSize = 4096
    configuration.store.deleteWhenHour = -1
    configuration.store.retentionCheckInterval = .seconds(3600)
}

/// Makes the first `count` CommitLog segments (default: all but the one being written) look
/// last written 80 hours ago, past the default retention.
func ageSegments(_ broker: Broker, first count: Int? = nil) throws {
    let segments = broker.store.commitLog.segmentList
    let old = Date().addingTimeInterval(-80 * 3600)
    for segment in segments.prefix(count ?? segments.count - 1) {
        try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: segment.file.path)
    }
}

func send(
    _ broker: Broker, topic: String, queue: Int32 = 0, body: String, group: String? = nil, tag: String? = nil,
    properties extra: [String: String] = [:]
) async throws {
    var properties = extra
    if let group { properties["__SHARDINGKEY"] = group }
    if let tag { properties[MessageProperty.tags] = tag }
    _ = try await broker.append(MessageToAppend(topic: topic, queueId: queue, body: Array(body.utf8), properties: properties))
}

extension Delivery {
    var text: String { String(decoding: message.body, as: UTF8.self) }
}

@Suite("Pop-style consumption")
struct ConsumptionTests {
    let plain = GroupConfig(name: "g", maxDeliveryAttempts: 3)

    @Test("each message is handed out once until acked; acked ones never come back")
    func handsOutOnce() async throws {
        try await withBroker { broker in
            for i in 0..<5 { try await send(broker, topic: "t", body: "m\(i)") }
            let engine = broker.consumption
            let first = try await engine.receive(group: plain, topic: "t", queueIds: [0], batchSize: 3, invisibleDuration: .seconds(30), filter: .all)
            #expect(first.map(\.text) == ["m0", "m1", "m2"])
            let second = try await engine.receive(group: plain, topic: "t", queueIds: [0], batchSize: 10, invisibleDuration: .seconds(30), filter: .all)
            #expect(second.map(\.text) == ["m3", "m4"])
            for delivery in first + second { try await engine.ack(group: "g", topic: "t", handle: delivery.handle) }
            #expect(try await engine.receive(group: plain, topic: "t", queueIds: [0], batchSize: 10, invisibleDuration: .seconds(30), filter: .all).isEmpty)
            #expect(await engine.consumerOffset(group: "g", topic: "t", queueId: 0) == 5)
        }
    }

    @Test("an unacked message comes back after its invisible duration with the next attempt, then goes to the DLQ")
    func redeliveryThenDeadLetter() async throws {
        try await withBroker { broker in
            try await send(broker, topic: "t", body: "poison")
            let engine = broker.consumption
            for attempt in Int32(1)...3 {
                var got: [Delivery] = []
                for _ in 0..<100 where got.isEmpty {
                    got = try await engine.receive(group: plain, topic: "t", queueIds: [0], batchSize: 1, invisibleDuration: .milliseconds(50), filter: .all)
                    if got.isEmpty { try await Task.sleep(for: .milliseconds(20)) }
                }
                #expect(got.map(\.attempt) == [attempt])
                #expect(got.first?.text == "poison")
            }
            try await Task.sleep(for: .milliseconds(80))
            // The fourth delivery would exceed 3 attempts: dead-lettered instead.
            #expect(try await engine.receive(group: plain, topic: "t", queueIds: [0], batchSize: 1, invisibleDuration: .seconds(1), filter: .all).isEmpty)
            let dead = try broker.store.messages(topic: "%DLQ%g", queueId: 0, from: 0)
            #expect(dead.messages.map { String(decoding: $0.body, as: UTF8.self) } == ["poison"])
            #expect(dead.messages.first?.properties["__DLQ_ORIGIN_TOPIC"] == "t")
        }
    }

    @Test("queues with nothing for the group are passed over, and hand out what arrives or falls due later")
    func passesOverIdleQueues() async throws {
        try await withBroker { broker in
            let engine = broker.consumption
            let queues: [Int32] = [0, 1, 2, 3]
            try await send(broker, topic: "t", queue: 2, body: "a")
            // Due in 300 ms: in flight, undelivered, until then.
            let due = Int64(Date().timeIntervalSince1970 * 1000) + 300
            try await send(broker, topic: "t", queue: 3, body: "later", properties: ["__STARTDELIVERTIME": "\(due)"])
            let first = try await engine.receive(group: plain, topic: "t", queueIds: queues, batchSize: 10, invisibleDuration: .seconds(30), filter: .all)
            #expect(first.map(\.text) == ["a"])
            // Every queue is now known and idle: nothing comes until something arrives or is due.
            #expect(try await engine.receive(group: plain, topic: "t", queueIds: queues, batchSize: 10, invisibleDuration: .seconds(30), filter: .all).isEmpty)
            try await send(broker, topic: "t", queue: 2, body: "b")
            try await send(broker, topic: "t", queue: 0, body: "c")
            let second = try await engine.receive(group: plain, topic: "t", queueIds: queues, batchSize: 10, invisibleDuration: .seconds(30), filter: .all)
            #expect(Set(second.map(\.text)) == ["b", "c"])
            var delayed: [Delivery] = []
            for _ in 0..<100 where delayed.isEmpty {
                delayed = try await engine.receive(group: plain, topic: "t", queueIds: queues, batchSize: 10, invisibleDuration: .seconds(30), filter: .all)
                if delayed.isEmpty { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(delayed.map(\.text) == ["later"])
            #expect(Int64(Date().timeIntervalSince1970 * 1000) >= due)
        }
    }

    @Test("a tag filter passes over refused messages by their ConsumeQueue tag hash: one receive finds a match behind 10,000")
    func tagFilterSkipsByHash() async throws {
        try await withBroker { broker in
            let group = GroupConfig(name: "g", maxDeliveryAttempts: 3)
            let other = try broker.store.encode(MessageToAppend(topic: "t", queueId: 0, body: Array("x".utf8), properties: [MessageProperty.tags: "other"]))
            for _ in 0..<10_000 { _ = try await broker.store.append(other) }
            try await send(broker, topic: "t", body: "match", tag: "wanted")
            try await send(broker, topic: "t", body: "late", tag: "other")
            let filter = try MessageFilter(.init(type: .tag, expression: "wanted"))
            let engine = broker.consumption
            // More refused messages than the 4,096 one receive reads: passed over by hash, they
            // do not count against it as messages read would.
            let got = try await engine.receive(group: group, topic: "t", queueIds: [0], batchSize: 1, invisibleDuration: .seconds(30), filter: filter)
            #expect(got.map(\.text) == ["match"])
            // Everything before the match is done for the group; once it is acked, so is the rest.
            #expect(await engine.consumerOffset(group: "g", topic: "t", queueId: 0) == 10_000)
            try await engine.ack(group: "g", topic: "t", handle: try #require(got.first).handle)
            #expect(try await engine.receive(group: group, topic: "t", queueIds: [0], batchSize: 1, invisibleDuration: .seconds(30), filter: filter).isEmpty)
            #expect(await engine.consumerOffset(group: "g", topic: "t", queueId: 0) == 10_002)
        }
    }

    @Test("a FIFO group has one message in flight per message group, in order")
    func fifoOnePerGroup() async throws {
        try await withBroker { broker in
            let fifo = GroupConfig(name: "f", fifo: true)
            for i in 0..<6 { try await send(broker, topic: "o", body: "\(i % 2 == 0 ? "a" : "b")\(i)", group: i % 2 == 0 ? "a" : "b") }
            let engine = broker.consumption
            var order: [String] = []
            for _ in 0..<10 {
                let batch = try await engine.receive(group: fifo, topic: "o", queueIds: [0], batchSize: 10, invisibleDuration: .seconds(30), filter: .all)
                if batch.isEmpty { break }
                #expect(batch.count <= 2)
                #expect(Set(batch.map { $0.message.messageGroup }).count == batch.count)
                order += batch.map(\.text)
                for delivery in batch { try await engine.ack(group: "f", topic: "o", handle: delivery.handle) }
            }
            #expect(order.filter { $0.hasPrefix("a") } == ["a0", "a2", "a4"])
            #expect(order.filter { $0.hasPrefix("b") } == ["b1", "b3", "b5"])
        }
    }

    @Test("changing the invisible duration replaces the receipt handle; the old one is refused")
    func changeInvisibleDurationRenewsHandle() async throws {
        try await withBroker { broker in
            try await send(broker, topic: "t", body: "x")
            let engine = broker.consumption
            let received = try await engine.receive(group: plain, topic: "t", queueIds: [0], batchSize: 1, invisibleDuration: .seconds(30), filter: .all)
            let delivery = try #require(received.first)
            let renewed = try await engine.changeInvisibleDuration(group: "g", topic: "t", handle: delivery.handle, duration: .seconds(60))
            #expect(renewed != delivery.handle)
            await #expect(throws: BrokerError.self) { try await engine.ack(group: "g", topic: "t", handle: delivery.handle) }
            try await engine.ack(group: "g", topic: "t", handle: renewed)
            // Acking again is harmless.
            try await engine.ack(group: "g", topic: "t", handle: renewed)
        }
    }

    @Test("auto-renewed deliveries stay invisible while their client lives, and come back once it is gone")
    func autoRenewFollowsClientLiveness() async throws {
        try await withBroker { broker in
            try await send(broker, topic: "t", body: "long job")
            broker.clients.heartbeat(clientId: "push-1", type: .pushConsumer, group: "g", language: "SWIFT")
            let engine = broker.consumption
            let first = try await engine.receive(group: plain, topic: "t", queueIds: [0], batchSize: 1,
                                                 invisibleDuration: .milliseconds(50), filter: .all, autoRenewFor: "push-1")
            #expect(first.count == 1)
            for _ in 0..<4 {
                try await Task.sleep(for: .milliseconds(60))
                #expect(try await engine.receive(group: plain, topic: "t", queueIds: [0], batchSize: 1,
                                                 invisibleDuration: .seconds(30), filter: .all).isEmpty)
            }
            broker.clients.remove(clientId: "push-1")
            try await Task.sleep(for: .milliseconds(60))
            let again = try await engine.receive(group: plain, topic: "t", queueIds: [0], batchSize: 1,
                                                 invisibleDuration: .seconds(30), filter: .all)
            #expect(again.map(\.attempt) == [2])
        }
    }

    @Test("tag filters skip other tags for good")
    func tagFilterSkips() async throws {
        try await withBroker { broker in
            for tag in ["a", "b", "a"] { try await send(broker, topic: "t", body: tag, tag: tag) }
            let engine = broker.consumption
            let got = try await engine.receive(group: plain, topic: "t", queueIds: [0], batchSize: 10, invisibleDuration: .seconds(30), filter: .tags(try TagFilter(expression: "a")))
            #expect(got.map(\.text) == ["a", "a"])
        }
    }

    @Test("a SQL92 filter hands out only the messages whose properties satisfy it, and skips the rest for good")
    func sqlFilterSkips() async throws {
        try await withBroker { broker in
            let sent: [(String, [String: String])] = [
                ("eu-10", ["region": "eu", "amount": "10"]), ("us-50", ["region": "us", "amount": "50"]),
                ("eu-500", ["region": "eu", "amount": "500"]), ("none", [:]), ("eu-x", ["region": "eu", "amount": "x"]),
            ]
            for (body, properties) in sent { try await send(broker, topic: "t", body: body, tag: "a", properties: properties) }
            let filter = try MessageFilter(.init(type: .sql, expression: "region = 'eu' AND amount BETWEEN 1 AND 100 OR TAGS = 'b'"))
            let engine = broker.consumption
            let got = try await engine.receive(group: plain, topic: "t", queueIds: [0], batchSize: 10, invisibleDuration: .seconds(30), filter: filter)
            #expect(got.map(\.text) == ["eu-10"])
            // Refused messages are done for this group: nothing more comes, even unfiltered.
            let rest = try await engine.receive(group: plain, topic: "t", queueIds: [0], batchSize: 10, invisibleDuration: .seconds(30), filter: .all)
            #expect(rest.isEmpty)
        }
    }

    @Test("a receive reads on past messages its filter refuses, so a match behind many is found at once")
    func filterReadsPastRefusedMessages() async throws {
        try await withBroker { broker in
            for index in 0..<300 { try await send(broker, topic: "t", body: "no-\(index)", properties: ["kind": "other"]) }
            try await send(broker, topic: "t", body: "match", properties: ["kind": "wanted"])
            let filter = try MessageFilter(.init(type: .sql, expression: "kind = 'wanted'"))
            let got = try await broker.consumption.receive(
                group: plain, topic: "t", queueIds: [0], batchSize: 1, invisibleDuration: .seconds(30), filter: filter)
            #expect(got.map(\.text) == ["match"])
        }
    }

    @Test("after a restart acked messages stay acked and unacked ones are delivered again")
    func progressSurvivesRestart() async throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "broker-restart-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var configuration = testConfiguration(directory)
        configuration.store.flushMode = .sync

        let before = try Broker(configuration: configuration)
        for i in 0..<6 { try await send(before, topic: "t", body: "m\(i)") }
        let delivered = try await before.consumption.receive(group: plain, topic: "t", queueIds: [0], batchSize: 6, invisibleDuration: .seconds(300), filter: .all)
        // Ack out of order, leaving a hole at m1.
        for delivery in delivered where ["m0", "m2", "m3"].contains(delivery.text) {
            try await before.consumption.ack(group: "g", topic: "t", handle: delivery.handle)
        }
        // No snapshot: the journal alone must carry the acks.
        before.store.shutdown()

        let after = try Broker(configuration: configuration)
        let again = try await after.consumption.receive(group: plain, topic: "t", queueIds: [0], batchSize: 10, invisibleDuration: .seconds(30), filter: .all)
        #expect(again.map(\.text).sorted() == ["m1", "m4", "m5"])
        #expect(again.allSatisfy { $0.attempt == 2 })
        await after.shutdown()
    }

    @Test("a receive and an ack request journal their whole batch in one append each, and a restart replays both")
    func batchesJournalOnce() async throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "broker-batch-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let configuration = testConfiguration(directory)
        let before = try Broker(configuration: configuration)
        for i in 0..<8 { try await send(before, topic: "t", body: "m\(i)") }
        let journalTopic = SystemTopic.consumerJournal
        let start = before.store.maxOffset(topic: journalTopic, queueId: ConsumerJournal.queueId)
        let delivered = try await before.consumption.receive(group: plain, topic: "t", queueIds: [0], batchSize: 8, invisibleDuration: .seconds(300), filter: .all)
        #expect(delivered.count == 8)
        #expect(before.store.maxOffset(topic: journalTopic, queueId: ConsumerJournal.queueId) == start + 1)

        // One batch: six good handles, a stale one (wrong delivery id) and one of a queue never read.
        var stale = delivered[6].handle
        stale.deliveryId &+= 1
        var unknown = delivered[7].handle
        unknown.queueId = 3
        let batch = delivered[0..<6].map { ("t", $0.handle) } + [("t", stale), ("t", unknown)]
        let outcomes = try await before.consumption.ack(group: "g", entries: batch)
        #expect(outcomes.prefix(6).allSatisfy { $0 == nil })
        #expect(outcomes.suffix(2).allSatisfy { $0 != nil })
        #expect(before.store.maxOffset(topic: journalTopic, queueId: ConsumerJournal.queueId) == start + 2)
        before.store.shutdown()

        let after = try Broker(configuration: configuration)
        let again = try await after.consumption.receive(group: plain, topic: "t", queueIds: [0], batchSize: 10, invisibleDuration: .seconds(30), filter: .all)
        #expect(again.map(\.text).sorted() == ["m6", "m7"])
        #expect(again.allSatisfy { $0.attempt == 2 })
        await after.shutdown()
    }
}

@Suite("Consumption building blocks")
struct ConsumptionUnitTests {
    @Test("after retention deletes the oldest messages, the group's offset moves up and what is in flight stays in flight")
    func retentionBelowTheCommittedOffset() async throws {
        try await withBroker(smallSegments) { broker in
            let plain = GroupConfig(name: "g", maxDeliveryAttempts: 3)
            for i in 0..<20 { try await send(broker, topic: "t", body: String(repeating: "x", count: 900) + "\(i)") }
            let engine = broker.consumption
            let got = try await engine.receive(group: plain, topic: "t", queueIds: [0], batchSize: 32, invisibleDuration: .seconds(300), filter: .all)
            #expect(got.count == 20)
            // The two oldest segments are old enough to go.
            try ageSegments(broker, first: 2)
            #expect(broker.store.runRetention(force: true) == 2)
            let minOffset = broker.store.minOffset(topic: "t", queueId: 0)
            #expect(minOffset > 0 && minOffset < 20)
            // Nothing new and nothing due: the receive hands out nothing, the offset moves up.
            #expect(try await engine.receive(group: plain, topic: "t", queueIds: [0], batchSize: 32, invisibleDuration: .seconds(300), filter: .all).isEmpty)
            #expect(await engine.consumerOffset(group: "g", topic: "t", queueId: 0) == minOffset)
            #expect(await engine.inFlightCount(group: "g", topic: "t", queueId: 0) == Int(20 - minOffset))
            // The surviving deliveries are still acked by their handles.
            let survivors = got.filter { $0.handle.offset >= minOffset }
            let outcomes = try await engine.ack(group: "g", entries: survivors.map { ("t", $0.handle) })
            #expect(outcomes.allSatisfy { $0 == nil })
            #expect(await engine.consumerOffset(group: "g", topic: "t", queueId: 0) == 20)
        }
    }

    @Test("an ack batch may interleave queues, repeat an entry and hold bad ones: each entry gets its own answer")
    func ackBatchAcrossQueues() async throws {
        try await withBroker { broker in
            for q: Int32 in 0..<3 {
                for i in 0..<3 { try await send(broker, topic: "t", queue: q, body: "q\(q)m\(i)") }
            }
            let engine = broker.consumption
            let plain = GroupConfig(name: "g", maxDeliveryAttempts: 3)
            let got = try await engine.receive(group: plain, topic: "t", queueIds: [0, 1, 2], batchSize: 9, invisibleDuration: .seconds(300), filter: .all)
            #expect(got.count == 9)
            let byQueue = Dictionary(grouping: got, by: \.handle.queueId)
            var stale = byQueue[1]![2].handle
            stale.deliveryId &+= 1
            var unknown = byQueue[0]![0].handle
            unknown.queueId = 7
            // q0, q1, q0 again, an error in the middle of q1's run, a repeat, a queue never read.
            let batch: [ReceiptHandle] = [
                byQueue[0]![0].handle, byQueue[1]![0].handle, byQueue[0]![1].handle, byQueue[1]![1].handle,
                stale, byQueue[1]![0].handle, unknown, byQueue[2]![0].handle, byQueue[0]![2].handle,
            ]
            let outcomes = try await engine.ack(group: "g", entries: batch.map { ("t", $0) })
            #expect(outcomes.map { $0 == nil } == [true, true, true, true, false, true, false, true, true])
            #expect(await engine.consumerOffset(group: "g", topic: "t", queueId: 0) == 3)
            #expect(await engine.consumerOffset(group: "g", topic: "t", queueId: 1) == 2)
            #expect(await engine.consumerOffset(group: "g", topic: "t", queueId: 2) == 1)
            #expect(await engine.consumerOffset(group: "g", topic: "t", queueId: 7) == nil)
            // What was not acked is still in flight, under its real handle.
            #expect(await engine.inFlightCount(group: "g", topic: "t", queueId: 1) == 1)
            #expect(try await engine.ack(group: "g", entries: [("t", byQueue[1]![2].handle)]) == [nil])
            #expect(await engine.consumerOffset(group: "g", topic: "t", queueId: 1) == 3)
        }
    }

    @Test("committed offset moves over contiguous acks only")
    func markDoneAdvancesContiguously() {
        var progress = QueueProgress(committed: 10)
        progress.markDone(12)
        #expect(progress.committed == 10)
        progress.markDone(10)
        #expect(progress.committed == 11)
        progress.markDone(11)
        #expect(progress.committed == 13)
        #expect(progress.acked.isEmpty)
        #expect(progress.isDone(12) && !progress.isDone(13))
    }

    @Test("done offsets are kept as merged runs: inserts join neighbours, lookups and trims are exact")
    func offsetRanges() {
        var done = OffsetRanges([5, 7, 6, 20])
        #expect(done.ranges == [5..<8, 20..<21])
        done.insert(10..<15)
        done.insert(8)  // touches 5..<8
        #expect(done.ranges == [5..<9, 10..<15, 20..<21])
        done.insert(9..<20)  // bridges all three
        #expect(done.ranges == [5..<21])
        done.insert(30..<40)
        done.insert(35..<45)
        done.insert(25..<26)
        #expect(done.ranges == [5..<21, 25..<26, 30..<45])
        #expect(done.count == 16 + 1 + 15)
        for offset: Int64 in [5, 20, 25, 30, 44] { #expect(done.contains(offset), "\(offset)") }
        for offset: Int64 in [4, 21, 24, 26, 29, 45] { #expect(!done.contains(offset), "\(offset)") }
        done.removeAll(below: 10)
        #expect(done.ranges == [10..<21, 25..<26, 30..<45])
        #expect(done.removeRun(at: 9) == nil)
        #expect(done.removeRun(at: 12) == 21)
        #expect(done.ranges == [25..<26, 30..<45])
        done.removeAll(below: 100)
        #expect(done.isEmpty)
    }

    @Test("a queue's progress keeps a million offsets acked behind a slow one as one run, and survives its snapshot (old format too)")
    func progressWithAckedRuns() throws {
        var progress = QueueProgress(committed: 0)
        progress.setInFlight(0, .init(deadline: .now + .seconds(3600), deliveryId: 1, messageGroup: ""))
        for offset in Int64(1)...1_000_000 { progress.markDone(offset) }
        progress.markDone(1_000_001..<1_000_010)
        #expect(progress.committed == 0)
        #expect(progress.acked.ranges == [1..<1_000_010])
        let encoded = try JSONEncoder().encode(progress)
        #expect(encoded.count < 200, "the snapshot holds runs, not offsets")
        let decoded = try JSONDecoder().decode(QueueProgress.self, from: encoded)
        #expect(decoded.acked == progress.acked && decoded.committed == 0)
        // The slow one acked: committed passes the whole run.
        progress.markDone(0)
        #expect(progress.committed == 1_000_010 && progress.acked.isEmpty)
        // A snapshot written before runs: a list of offsets.
        let old = try JSONDecoder().decode(QueueProgress.self, from: Data(#"{"committed":3,"acked":[5,4,9],"attempts":[],"commitEpoch":0}"#.utf8))
        #expect(old.acked.ranges == [4..<6, 9..<10])
        #expect(old.isDone(4) && old.isDone(5) && !old.isDone(6) && old.isDone(9))
    }

    @Test("expired deliveries are found by deadline, renewals extend them, and the earliest deadline stays a true lower bound")
    func expiryBookkeeping() {
        let t = ContinuousClock.now
        var progress = QueueProgress()
        #expect(progress.expiredOffsets(now: t + .seconds(100)) { _ in nil } == [])
        progress.setInFlight(7, .init(deadline: t + .seconds(10), deliveryId: 1, messageGroup: ""))
        progress.setInFlight(3, .init(deadline: t + .seconds(5), deliveryId: 2, messageGroup: "", renewingClient: "c"))
        #expect(progress.earliestDeadline == t + .seconds(5))
        #expect(progress.expiredOffsets(now: t) { _ in nil } == [])
        #expect(progress.expiredOffsets(now: t + .seconds(11)) { _ in nil } == [3, 7])
        // A renewal answered for the auto-renewed one keeps it in flight with its new deadline.
        #expect(progress.expiredOffsets(now: t + .seconds(11)) { $0.renewingClient == nil ? nil : t + .seconds(30) } == [7])
        #expect(progress.inFlight[3]?.deadline == t + .seconds(30))
        progress.removeInFlight(7)
        #expect(progress.expiredOffsets(now: t + .seconds(12)) { _ in nil } == [])
        #expect(progress.earliestDeadline == t + .seconds(30))
        // An earlier deadline set later lowers the bound at once.
        progress.setInFlight(9, .init(deadline: t + .seconds(1), deliveryId: 3, messageGroup: ""))
        #expect(progress.expiredOffsets(now: t + .seconds(2)) { _ in nil } == [9])
        progress.markDone(9)
        progress.markDone(3)
        #expect(progress.expiredOffsets(now: t + .seconds(100)) { _ in nil } == [])
        #expect(progress.earliestDeadline == nil)
    }

    @Test("journal events round-trip through their text form")
    func journalRoundTrip() {
        let key = ProgressKey(group: "g-1", topic: "orders", queueId: 7)
        for event in [ProgressEvent.delivered(key, offset: 42, attempt: 3), .acked(key, offset: 0), .committed(key, offset: 99, epoch: 4)] {
            #expect(ConsumerJournal.decode(ConsumerJournal.encode(event)) == event)
        }
        #expect(ConsumerJournal.decode("X\u{1F}g") == nil)
        // The text form is what journals on disk hold: it must not change.
        #expect(ConsumerJournal.encode(.delivered(key, offset: 42, attempt: 3)) == "D\u{1F}g-1\u{1F}orders\u{1F}7\u{1F}42\u{1F}3")
        #expect(ConsumerJournal.encode(.committed(key, offset: 0, epoch: Int64.max)) == "C\u{1F}g-1\u{1F}orders\u{1F}7\u{1F}0\u{1F}\(Int64.max)")
        let edge = ProgressKey(group: "g", topic: "t", queueId: -1)
        #expect(ConsumerJournal.decode(ConsumerJournal.encode(.acked(edge, offset: Int64.max))) == .acked(edge, offset: Int64.max))
    }

    @Test("a journal message holds several events; one-event messages of older brokers still decode")
    func journalBatchRoundTrip() {
        let key = ProgressKey(group: "g", topic: "t", queueId: 1)
        let events = [ProgressEvent.delivered(key, offset: 5, attempt: 1), .acked(key, offset: 5), .committed(key, offset: 9, epoch: 2)]
        let body = String(decoding: ConsumerJournal.encode(events), as: UTF8.self)
        #expect(ConsumerJournal.decodeAll(body) == events)
        #expect(ConsumerJournal.decodeAll(ConsumerJournal.encode(events[1])) == [events[1]])
        // A malformed event costs itself only.
        #expect(ConsumerJournal.decodeAll("X\u{1F}g\u{1E}" + ConsumerJournal.encode(events[1])) == [events[1]])
    }

    @Test("a commit journaled after acks it preceded does not undo them on replay")
    func staleCommitIsIgnoredOnReplay() {
        let key = ProgressKey(group: "g", topic: "t", queueId: 0)
        // Applied in this order: reset to 50 (epoch 1), then acks of 50...99.
        var live = QueueProgress()
        live.apply(.committed(key, offset: 50, epoch: 1))
        for offset in Int64(50)..<100 { live.apply(.acked(key, offset: offset)) }
        #expect(live.committed == 100)
        // A snapshot of that state, then the journal tail replayed in append order, where the
        // reset landed after the acks.
        var replayed = live
        for offset in Int64(50)..<100 { replayed.apply(.acked(key, offset: offset)) }
        replayed.apply(.committed(key, offset: 50, epoch: 1))
        #expect(replayed.committed == 100)
        // A newer reset still applies.
        replayed.apply(.committed(key, offset: 10, epoch: 2))
        #expect(replayed.committed == 10)
    }

    @Test("receipt handles parse back and reject foreign or malformed ones")
    func receiptHandles() throws {
        let handle = ReceiptHandle(brokerName: "broker-a", queueId: 3, offset: 12, deliveryId: 0xABC)
        #expect(try ReceiptHandle(parsing: handle.description, brokerName: "broker-a") == handle)
        #expect(throws: BrokerError.self) { try ReceiptHandle(parsing: handle.description, brokerName: "broker-b") }
        for bad in ["", "x", "broker-a:1:2", "broker-a:-1:2:3", "broker-a:1:2:zz", "broker-a::2:3", "broker-a:1::3",
                    "broker-a:1:2:", "broker-a:R:2:3", "broker-a:2147483648:2:3", "broker-a:1:2:12345678901234567", ":1:2:3",
                    "broker-a:1:2:3:4", "broker-a: 1:2:3", "broker-a:+1:2:3"] {
            #expect(throws: BrokerError.self) { try ReceiptHandle(parsing: bad, brokerName: "broker-a") }
        }
        // Broker names may contain colons; the retry flag and both hex cases survive.
        let colons = ReceiptHandle(brokerName: "a:b", queueId: Int32.max, offset: 987_654_321_012, deliveryId: .max, fromRetryTopic: true)
        #expect(try ReceiptHandle(parsing: colons.description, brokerName: "a:b") == colons)
        #expect(try ReceiptHandle(parsing: "a:b:R0:0:FfEe", brokerName: "a:b") == ReceiptHandle(brokerName: "a:b", queueId: 0, offset: 0, deliveryId: 0xFFEE, fromRetryTopic: true))
    }

    @Test("tag expressions: star, alternatives, and empty alternatives refused")
    func tagExpressions() throws {
        #expect(try TagFilter(expression: "*").matches("anything"))
        #expect(try TagFilter(expression: "").matches(nil))
        let some = try TagFilter(expression: " a || b ")
        #expect(some.matches("a") && some.matches("b") && !some.matches("c") && !some.matches(nil))
        #expect(throws: BrokerError.self) { try TagFilter(expression: "a || ") }
    }

    @Test("blank means what Character.isWhitespace says, ASCII or not")
    func blankStrings() {
        for blank in ["", " ", "\t\n\r\u{0B}\u{0C}", "\u{3000}", " \u{00A0} "] { #expect(blank.isBlank, "\(blank.debugDescription)") }
        for text in ["a", " a ", "\u{1}", "\u{7F}", "é", " \u{3000}x", "\u{200B}"] {
            #expect(text.isBlank == text.allSatisfy(\.isWhitespace), "\(text.debugDescription)")
            #expect(!text.isBlank || text.allSatisfy(\.isWhitespace))
        }
        #expect(!"a".isBlank && !"\u{1}".isBlank && !"é".isBlank)
    }

    @Test("every broker error maps to a protocol status with a message")
    func errorsMapToStatus() {
        #expect(BrokerError.topicNotFound("x").status.code == .topicNotFound)
        #expect(BrokerError.clientIdRequired.status.code == .clientIdRequired)
        #expect(BrokerError.flushTimeout.status.code == .masterPersistenceTimeout)
        // A sync-flush backlog is "retry later" (clients retry TOO_MANY_REQUESTS), not an internal error.
        #expect(BrokerError(StoreError.flushBacklog(bytes: 1 << 26)).status.code == .tooManyRequests)
        #expect(BrokerError.bodyTooLarge(size: 5, limit: 4).status.message.contains("5 bytes"))
    }
}
