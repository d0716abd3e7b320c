import Foundation

/// `<data>/config/queueFloors.json`: per queue, the first offset it may serve. A deleted topic's
/// queues get their end as floor, so its messages never come back: not when a topic of the same
/// name is created, not when a restart re-dispatches the log into its queues, not on a replica.
///
/// Queue offsets go on from the floor rather than restarting at 0, so a group's stored offset
/// from before the deletion stays below every new message (it is moved up to the floor on its
/// next receive), and a topic's message counter never falls.
struct QueueFloors: Codable, Equatable {
    struct Floor: Codable, Equatable {
        var topic: String
        var queueId: Int32
        var offset: Int64
    }

    /// A deleted topic and the end of the CommitLog when it was deleted: a message scheduled
    /// for it before then (a delay message not yet due) never reaches it.
    struct Cleared: Codable, Equatable {
        var topic: String
        var logOffset: Int64
    }

    var floors: [Floor]
    var cleared: [Cleared]?

    init(_ state: FloorState) {
        floors = state.queues.keys.sorted().map { Floor(topic: $0.topic, queueId: $0.queueId, offset: state.queues[$0] ?? 0) }
        cleared = state.topics.keys.sorted().map { Cleared(topic: $0, logOffset: state.topics[$0] ?? 0) }
    }

    var state: FloorState {
        var state = FloorState()
        for floor in floors {
            let id = QueueID(topic: floor.topic, queueId: floor.queueId)
            state.queues[id] = Swift.max(state.queues[id] ?? 0, floor.offset)
        }
        for topic in cleared ?? [] { state.topics[topic.topic] = Swift.max(state.topics[topic.topic] ?? 0, topic.logOffset) }
        return state
    }

    static func decode(_ bytes: [UInt8], path: String) throws(StoreError) -> QueueFloors {
        do {
            return try JSONDecoder().decode(QueueFloors.self, from: Data(bytes))
        } catch {
            throw .badFile(path: path, reason: "unreadable queue floors: \(error)")
        }
    }

    func encoded() throws(StoreError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        do { return Array(try encoder.encode(self)) } catch {
            throw .badFile(path: MessageStore.queueFloorsFile, reason: "cannot encode queue floors")
        }
    }
}

/// The floors in memory: per queue its floor, per deleted topic where the log ended then.
struct FloorState: Sendable, Equatable {
    var queues: [QueueID: Int64] = [:]
    var topics: [String: Int64] = [:]

    /// `other`'s floors and deletions where they are higher; whether anything rose.
    mutating func raise(to other: FloorState) -> Bool {
        var raised = false
        for (id, offset) in other.queues where offset > queues[id] ?? 0 {
            queues[id] = offset
            raised = true
        }
        for (topic, offset) in other.topics where offset > topics[topic] ?? 0 {
            topics[topic] = offset
            raised = true
        }
        return raised
    }
}

extension MessageStore {
    /// The floors file's name in ``configDirectory`` (a master ships it to its replicas).
    public static let queueFloorsFile = "queueFloors.json"

    var queueFloorsPath: String { configDirectory + "/" + Self.queueFloorsFile }

    static func loadQueueFloors(_ path: String) throws(StoreError) -> FloorState {
        guard let bytes = try AtomicFile.read(path) else { return FloorState() }
        return try QueueFloors.decode(bytes, path: path).state
    }

    /// Makes every message now in `topic`'s queues unreadable for good (a deleted topic): each
    /// queue's end becomes its floor, and the log's end is noted as where the topic was deleted
    /// (``topicDeletedAt(_:)``), saved before it takes effect. The records stay in the CommitLog
    /// until retention removes them, and lookups by key or id still find them, as RocketMQ's do.
    /// Returns the floors set.
    @discardableResult
    public func clearTopic(_ topic: String) throws(StoreError) -> [QueueID: Int64] {
        // Under the writer lock: a message appended meanwhile is either below the floor (in the
        // topic as deleted) or above it, never lost between the two.
        try writer.withLock { (_) throws(StoreError) -> [QueueID: Int64] in
            let cleared = allQueues().filter { $0.id.topic == topic && $0.maxOffset > $0.minOffset }
            var next = queueFloors.withLock { $0 }
            for cq in cleared { next.queues[cq.id] = cq.maxOffset }
            next.topics[topic] = Swift.max(next.topics[topic] ?? 0, commitLog.writtenPosition)
            try AtomicFile.write(try QueueFloors(next).encoded(), to: queueFloorsPath)
            queueFloors.withLock { $0 = next }
            var set: [QueueID: Int64] = [:]
            for cq in cleared {
                let floor = next.queues[cq.id] ?? 0
                cq.raiseFloor(to: floor)
                set[cq.id] = floor
            }
            logger.notice("topic cleared: its messages are no longer served", metadata: ["topic": "\(topic)", "queues": "\(set.count)"])
            return set
        }
    }

    /// A replica takes its master's floors file (as the master wrote it): saved, then applied.
    /// Floors only rise, so an older file changes nothing.
    public func applyQueueFloors(json bytes: [UInt8]) throws(StoreError) {
        let given = try QueueFloors.decode(bytes, path: queueFloorsPath).state
        try writer.withLock { (_) throws(StoreError) in
            var next = queueFloors.withLock { $0 }
            guard next.raise(to: given) else { return }
            try AtomicFile.write(try QueueFloors(next).encoded(), to: queueFloorsPath)
            queueFloors.withLock { $0 = next }
            for (id, offset) in next.queues { try consumeQueue(id, create: true)?.raiseFloor(to: offset) }
        }
    }

    /// The floor of one queue (0 without one).
    func queueFloor(_ id: QueueID) -> Int64 {
        queueFloors.withLock { $0.queues[id] } ?? 0
    }

    /// Where the CommitLog ended when `topic` was last deleted (``clearTopic(_:)``), if it was: a
    /// record below it that was meant for the topic (a delay message's schedule entry) belongs
    /// to the deleted topic.
    public func topicDeletedAt(_ topic: String) -> Int64? {
        queueFloors.withLock { $0.topics[topic] }
    }
}
