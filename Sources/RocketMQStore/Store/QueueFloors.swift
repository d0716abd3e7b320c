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

    var floors: [Floor]

    init(_ map: [QueueID: Int64]) {
        floors = map.keys.sorted().map { Floor(topic: $0.topic, queueId: $0.queueId, offset: map[$0] ?? 0) }
    }

    var map: [QueueID: Int64] {
        floors.reduce(into: [:]) { map, floor in
            let id = QueueID(topic: floor.topic, queueId: floor.queueId)
            map[id] = Swift.max(map[id] ?? 0, floor.offset)
        }
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

extension MessageStore {
    /// The floors file's name in ``configDirectory`` (a master ships it to its replicas).
    public static let queueFloorsFile = "queueFloors.json"

    var queueFloorsPath: String { configDirectory + "/" + Self.queueFloorsFile }

    static func loadQueueFloors(_ path: String) throws(StoreError) -> [QueueID: Int64] {
        guard let bytes = try AtomicFile.read(path) else { return [:] }
        return try QueueFloors.decode(bytes, path: path).map
    }

    /// Makes every message now in `topic`'s queues unreadable for good (a deleted topic): each
    /// queue's end becomes its floor, saved before it takes effect. The records stay in the
    /// CommitLog until retention removes them, and lookups by key or id still find them, as
    /// RocketMQ's do. Returns the floors set.
    @discardableResult
    public func clearTopic(_ topic: String) throws(StoreError) -> [QueueID: Int64] {
        // Under the writer lock: a message appended meanwhile is either below the floor (in the
        // topic as deleted) or above it, never lost between the two.
        try writer.withLock { (_) throws(StoreError) -> [QueueID: Int64] in
            let cleared = allQueues().filter { $0.id.topic == topic && $0.maxOffset > $0.minOffset }
            guard !cleared.isEmpty else { return [:] }
            var next = queueFloors.withLock { $0 }
            for cq in cleared { next[cq.id] = cq.maxOffset }
            try AtomicFile.write(try QueueFloors(next).encoded(), to: queueFloorsPath)
            queueFloors.withLock { $0 = next }
            var set: [QueueID: Int64] = [:]
            for cq in cleared {
                let floor = next[cq.id] ?? 0
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
        let given = try QueueFloors.decode(bytes, path: queueFloorsPath).map
        try writer.withLock { (_) throws(StoreError) in
            var next = queueFloors.withLock { $0 }
            var raised = false
            for (id, offset) in given where offset > next[id] ?? 0 {
                next[id] = offset
                raised = true
            }
            guard raised else { return }
            try AtomicFile.write(try QueueFloors(next).encoded(), to: queueFloorsPath)
            queueFloors.withLock { $0 = next }
            for (id, offset) in next { try consumeQueue(id, create: true)?.raiseFloor(to: offset) }
        }
    }

    /// The floor of one queue (0 without one).
    func queueFloor(_ id: QueueID) -> Int64 {
        queueFloors.withLock { $0[id] } ?? 0
    }
}
