import Foundation
import Logging
import Synchronization
import Testing
@testable import RocketMQStore

/// A temporary data directory, removed when the test ends.
final class TempDirectory {
    let path: String
    init(_ name: String = "store") {
        path = FileManager.default.temporaryDirectory
            .appendingPathComponent("rmq-\(name)-\(UUID().uuidString.prefix(8))").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Strings gathered from any thread (store hooks run on the appending thread).
final class Collected: Sendable {
    private let items = Mutex<[String]>([])
    func add(_ more: [String]) { items.withLock { $0 += more } }
    var all: [String] { items.withLock { $0 } }
}

/// Tests log only errors.
let quietLogger: Logger = {
    var l = Logger(label: "store-test")
    l.logLevel = .error
    return l
}()

func openStore(_ configuration: StoreConfiguration) throws(StoreError) -> MessageStore {
    try MessageStore(configuration: configuration, logger: quietLogger)
}

/// A sync-flush store whose flusher is held (a disk that does not keep up: `holdFlushes(false)`
/// lets it go), with at most `backlogLimit` bytes staged for it.
func openStoreWithStuckDisk(_ dir: String, backlogLimit: Int) throws(StoreError) -> MessageStore {
    var config = testConfiguration(dir, mode: .sync, segmentSize: 1 << 20)
    config.syncFlushBacklogLimit = backlogLimit
    let store = try openStore(config)
    store.flushService.holdFlushes(true)
    return store
}

/// Bytes of disk allocated (`st_blocks`) to the first ConsumeQueue file of `topic`'s queue 0
/// under the data directory `dir` (holes count nothing).
func firstConsumeQueueFileAllocation(_ dir: String, topic: String) throws -> Int {
    let queue = dir + "/consumequeue/\(topic)/0"
    let path = try #require(FileSystem.list(queue).first.map { queue + "/" + $0 })
    var info = stat()
    return stat(path, &info) == 0 ? Int(info.st_blocks) * 512 : -1
}

/// Small sizes so tests roll segments and files quickly.
func testConfiguration(_ dir: String, mode: FlushMode = .async, segmentSize: Int64 = 64 * 1024) -> StoreConfiguration {
    var c = StoreConfiguration(dataDirectory: dir)
    c.commitLogSegmentSize = segmentSize
    c.consumeQueueFileEntries = 64
    c.flushMode = mode
    c.indexSlots = 1024
    c.indexEntries = 4096
    c.maxMessageSize = 32 * 1024
    c.checkpointInterval = .milliseconds(100)
    c.flushInterval = .milliseconds(50)
    c.retentionCheckInterval = .seconds(3600)
    return c
}

func randomBytes(_ n: Int, _ rng: inout some RandomNumberGenerator) -> [UInt8] {
    (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
}

/// A seeded generator so failures reproduce.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension MessageStore {
    /// Every record in the CommitLog from `start` (a record boundary; default the oldest), in
    /// order, each fully checked (CRCs).
    func allRecords(from start: Int64? = nil) throws -> [StoredMessage] {
        var out = [StoredMessage]()
        var position = max(start ?? 0, commitLog.minOffset)
        let end = commitLog.writtenPosition
        while position < end {
            let head = try commitLog.read(at: position, size: RecordCodec.blankSize)
            switch head.withUnsafeBytes({ RecordCodec.peek($0) }) {
            case .message(let size):
                out.append(try commitLog.message(at: position, size: size))
                position += Int64(size)
            case .endOfSegment(let size):
                position += Int64(size)
            case .empty, .invalid:
                throw StoreError.corruptRecord(physicalOffset: position, reason: "walk hit \(head)")
            }
        }
        return out
    }

    /// Checks that ConsumeQueues and IndexFiles agree exactly with the CommitLog (from `start`,
    /// a record boundary, to the end; default all of it); returns the records checked.
    @discardableResult
    func verifyConsistency(from start: Int64? = nil, checkIndex: Bool = true,
                           sourceLocation: SourceLocation = #_sourceLocation) throws -> [StoredMessage] {
        let records = try allRecords(from: start)
        var perQueue = [QueueID: Int64]()
        for m in records {
            let id = QueueID(topic: m.topic, queueId: m.queueId)
            let expected = perQueue[id] ?? m.queueOffset
            #expect(m.queueOffset == expected, "queue offsets of \(id) not dense at \(m.physicalOffset)", sourceLocation: sourceLocation)
            perQueue[id] = m.queueOffset + 1
            let cq = queues.withLock { $0[id] }
            let entry = cq?.entry(at: m.queueOffset)
            #expect(entry == ConsumeQueueEntry(physicalOffset: m.physicalOffset, size: m.storeSize, tagsHash: TagHash.of(m.tags)),
                    "ConsumeQueue \(id)@\(m.queueOffset) disagrees with CommitLog", sourceLocation: sourceLocation)
            if checkIndex, let key = m.keys.first {
                #expect(messages(key: key, topic: m.topic).contains { $0.physicalOffset == m.physicalOffset },
                        "IndexFile misses key \(key)", sourceLocation: sourceLocation)
            }
            if checkIndex, let u = m.uniqueId {
                #expect(message(uniqueId: u)?.physicalOffset == m.physicalOffset, "IndexFile misses \(u)", sourceLocation: sourceLocation)
            }
        }
        for id in queueIDs() where start == nil || perQueue[id] != nil {
            let max = maxOffset(topic: id.topic, queueId: id.queueId)
            #expect(max == (perQueue[id] ?? max), "ConsumeQueue \(id) max \(max) but CommitLog ends at \(perQueue[id] ?? -1)",
                    sourceLocation: sourceLocation)
            if perQueue[id] == nil {
                #expect(max == minOffset(topic: id.topic, queueId: id.queueId), "ConsumeQueue \(id) has entries with no records",
                        sourceLocation: sourceLocation)
            }
        }
        return records
    }
}

extension MessageStore {
    /// Reads the message at `queueOffset` of `id` through every read API: by queue, physical
    /// offset, message id, unique id, each key, and store-time search. Returns what went wrong.
    func problemsReading(_ id: QueueID, at queueOffset: Int64) -> [String] {
        let place = "\(id)@\(queueOffset)"
        do {
            let queued = try messages(topic: id.topic, queueId: id.queueId, from: queueOffset, maxCount: 1).messages.first
            let m: StoredMessage
            if configuration.flushMode == .sync, commitLog.flushedPosition <= (queued?.physicalOffset ?? .max) {
                // Sync flush serves consumers only what is on disk: not this one yet.
                if queued != nil { return ["\(place): served to consumers before it is on disk"] }
                guard let entry = queues.withLock({ $0[id] })?.entry(at: queueOffset) else {
                    return ["\(place): no ConsumeQueue entry"]
                }
                m = try commitLog.message(at: entry.physicalOffset, size: Int(entry.size))
            } else {
                guard let queued, queued.queueOffset == queueOffset else { return ["\(place): the queue read found nothing"] }
                m = queued
            }
            var problems = [String]()
            if try message(atPhysicalOffset: m.physicalOffset) != m { problems.append("\(place): physical offset read differs") }
            if try message(msgId: m.msgId) != m { problems.append("\(place): msgId read differs") }
            if let u = m.uniqueId, message(uniqueId: u)?.physicalOffset != m.physicalOffset {
                problems.append("\(place): unique id \(u) not found")
            }
            for key in m.keys where !messages(key: key, topic: m.topic).contains(where: { $0.physicalOffset == m.physicalOffset }) {
                problems.append("\(place): key \(key) not found")
            }
            if try self.queueOffset(topic: id.topic, queueId: id.queueId, forTimestamp: m.storeTimestamp) > queueOffset {
                problems.append("\(place): store-time search skips it")
            }
            return problems
        } catch {
            return ["\(place): \(error)"]
        }
    }
}

func message(_ topic: String = "TopicA", queue: Int32 = 0, body: [UInt8], tag: String? = nil, keys: String? = nil,
             uniq: String? = nil, extra: [String: String] = [:]) -> MessageToAppend {
    var props = extra
    if let tag { props[MessageProperty.tags] = tag }
    if let keys { props[MessageProperty.keys] = keys }
    if let uniq { props[MessageProperty.uniqueKey] = uniq }
    return MessageToAppend(topic: topic, queueId: queue, body: body, properties: props, flags: 7,
                           bornTimestamp: 1_700_000_000_000, bornHost: "192.168.1.2:5555", reconsumeTimes: 2,
                           preparedTransactionOffset: 99)
}
