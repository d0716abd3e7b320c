import Foundation
@testable import RocketMQBroker
@testable import RocketMQClient
@testable import RocketMQStore
import RocketRPC
import Testing

/// A batch send is stored whole or not at all, as RocketMQ stores a batch: a producer told that
/// its batch failed sends it again, and a stored prefix would then be stored twice.
@Suite struct BatchSendTests {
    private func send(
        _ bodies: [String], topic: String, to endpoint: String,
        shaping: (Int, inout Apache_Rocketmq_V2_SystemProperties) -> Void = { _, _ in }
    ) async throws -> Apache_Rocketmq_V2_SendMessageResponse {
        let address = try Endpoint(parsing: endpoint)
        let channel = RPCChannel(configuration: ChannelConfiguration(host: address.host, port: address.port))
        defer { Task { await channel.close() } }
        let messages = bodies.enumerated().map { index, body in
            var system = Apache_Rocketmq_V2_SystemProperties()
            system.messageId = "batch-\(UUID().uuidString)"
            system.messageType = .normal
            system.queueId = 0
            shaping(index, &system)
            return Apache_Rocketmq_V2_Message(
                topic: Apache_Rocketmq_V2_Resource(resourceNamespace: "", name: topic), systemProperties: system, body: Array(body.utf8))
        }
        let metadata = RequestHeaders(clientId: "batch-test", namespace: "", credentials: nil).metadata()
        return try await Apache_Rocketmq_V2_MessagingService.Client(channel: channel).sendMessage(
            Apache_Rocketmq_V2_SendMessageRequest(messages: messages), options: CallOptions(timeout: .seconds(10), metadata: metadata))
    }

    @Test func aBatchTheSyncFlushBacklogCannotTakeIsRefusedWholeAndOneAFailedFlushLeavesIsReportedWritten() async throws {
        let inProcess = try await InProcessBroker.start {
            $0.store.flushMode = .sync
            $0.store.syncFlushBacklogLimit = 4096
        }
        do {
            try await check(inProcess)
        } catch {
            await inProcess.stop()
            throw error
        }
        await inProcess.stop()
    }

    private func check(_ inProcess: InProcessBroker) async throws {
        let store = inProcess.broker.store
        let topic = unique("batch")
        let kib = String(repeating: "x", count: 1000)
        #expect(try await send(["warm-up"], topic: topic, to: inProcess.endpoint).status?.code == .ok)

        store.flushService.holdFlushes(true)  // a disk that does not keep up
        async let first = send([kib], topic: topic, to: inProcess.endpoint)
        for _ in 0..<500 where store.maxOffset(topic: topic, queueId: 0) < 2 { try await Task.sleep(for: .milliseconds(5)) }
        try #require(store.maxOffset(topic: topic, queueId: 0) == 2, "the single send was not staged")
        // ~1.1 KiB staged: two more records would fit under 4 KiB, four do not.
        let refused = try await send([kib, kib, kib, kib], topic: topic, to: inProcess.endpoint)
        store.flushService.holdFlushes(false)
        #expect(refused.status?.code == .tooManyRequests)
        #expect(refused.status?.message.contains("nothing of the batch was stored") == true, "\(refused.status?.message ?? "")")
        #expect(refused.entries.map(\.status?.code) == Array(repeating: .tooManyRequests, count: 4))
        #expect(try await first.status?.code == .ok)
        #expect(store.maxOffset(topic: topic, queueId: 0) == 2, "nothing of the refused batch is in the queue")

        let stored = try await send(["a", "b"], topic: topic, to: inProcess.endpoint)
        #expect(stored.status?.code == .ok)
        #expect(stored.entries.map(\.offset) == [2, 3])

        // Written, then its fdatasync fails: every message says so, none is called stored and none refused.
        store.commitLog.failNextSyncForTesting = true
        let unconfirmed = try await send(["c", "d", "e"], topic: topic, to: inProcess.endpoint)
        #expect(unconfirmed.status?.code == .internalServerError)
        #expect(unconfirmed.status?.message.contains("all 3 messages of the batch were written, none is confirmed") == true, "\(unconfirmed.status?.message ?? "")")
        #expect(unconfirmed.entries.map(\.status?.code) == Array(repeating: .internalServerError, count: 3))
        #expect(store.maxOffset(topic: topic, queueId: 0) == 7)
    }
}

extension BatchSendTests {
    /// A sync master with no slave stores a batch but cannot have it confirmed: every message
    /// says so (HA_NOT_AVAILABLE, which producers do not send again), none is called refused.
    @Test func aSyncMasterWithoutASlaveReportsTheWholeBatchWrittenButUnconfirmed() async throws {
        let inProcess = try await InProcessBroker.start { $0.role = .syncMaster }
        do {
            let topic = unique("ha")
            let answer = try await send(["a", "b", "c"], topic: topic, to: inProcess.endpoint)
            #expect(answer.status?.code == .haNotAvailable)
            #expect(answer.status?.message.contains("all 3 messages of the batch were written, none is confirmed") == true, "\(answer.status?.message ?? "")")
            #expect(answer.entries.map(\.status?.code) == Array(repeating: .haNotAvailable, count: 3))
            #expect(inProcess.broker.store.maxOffset(topic: topic, queueId: 0) == 3)
        } catch {
            await inProcess.stop()
            throw error
        }
        await inProcess.stop()
    }
}

extension BatchSendTests {
    /// A half message or a delay message goes through a service of its own, so a batch holding
    /// one could not be stored all or none: it is refused before anything is stored, as RocketMQ
    /// refuses it (before, its messages were stored one by one and a failure half-way answered
    /// MULTIPLE_RESULTS with a prefix stored).
    @Test func aBatchWithAHalfOrADelayMessageIsRefusedWholeAndTheSameMessagesAloneAreStored() async throws {
        let inProcess = try await InProcessBroker.start()
        do {
            let broker = inProcess.broker
            let topic = unique("mixed")
            let transactionTopic = unique("mixed-tx")
            try broker.upsertTopic(TopicConfig(name: topic, queueCount: 1, messageTypes: ["NORMAL", "DELAY"]))
            try broker.upsertTopic(TopicConfig(name: transactionTopic, queueCount: 1, messageTypes: ["TRANSACTION"]))
            let due = Google_Protobuf_Timestamp(seconds: Int64(Date().timeIntervalSince1970) + 3_600, nanos: 0)
            let overdue = Google_Protobuf_Timestamp(seconds: Int64(Date().timeIntervalSince1970) - 3_600, nanos: 0)
            for (name, when) in [("due later", due), ("overdue", overdue)] {
                let refused = try await send(["a", "b", "c"], topic: topic, to: inProcess.endpoint) { index, system in
                    if index == 1 { system.messageType = .delay; system.deliveryTimestamp = when }
                }
                #expect(refused.status?.code == .badRequest, "\(name)")
                #expect(refused.status?.message.contains("message 2 of 3: a delay message cannot be sent in a batch") == true, "\(refused.status?.message ?? "")")
                #expect(refused.status?.message.contains("nothing of the batch was stored") == true)
                #expect(refused.entries.map(\.status?.code) == Array(repeating: .badRequest, count: 3))
            }
            let half = try await send(["h", "i"], topic: transactionTopic, to: inProcess.endpoint) { index, system in
                system.messageType = .transaction
            }
            #expect(half.status?.code == .badRequest)
            #expect(half.status?.message.contains("message 1 of 2: a transaction's half message cannot be sent in a batch") == true, "\(half.status?.message ?? "")")
            #expect(broker.store.maxOffset(topic: topic, queueId: 0) == 0, "nothing of a refused batch is in the queue")
            #expect(broker.delays.pendingCount == 0, "nothing of a refused batch is scheduled")
            #expect(broker.transactions.openCount == 0, "nothing of a refused batch is a half message")

            // Alone, each is taken.
            let delay = try await send(["later"], topic: topic, to: inProcess.endpoint) { _, system in
                system.messageType = .delay
                system.deliveryTimestamp = due
            }
            #expect(delay.status?.code == .ok)
            #expect(broker.delays.pendingCount == 1)
            let plain = try await send(["a", "b"], topic: topic, to: inProcess.endpoint)
            #expect(plain.status?.code == .ok)
            #expect(plain.entries.map(\.offset) == [0, 1])
        } catch {
            await inProcess.stop()
            throw error
        }
        await inProcess.stop()
    }
}
