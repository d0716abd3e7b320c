// store-crash-child DIR sync|async WRITERS SEGMENT_SIZE RUN_ID
//
// Opens a MessageStore on DIR and appends from WRITERS concurrent tasks until killed. After
// each acknowledged append it writes one line to stdout (a single write(2), atomic on a
// pipe): "A <physicalOffset> <topic> <queueId> <queueOffset> <key> <bodyLength>".
// The body is derived from the key (see `CrashChildPayload.body`), so the test can check
// every acknowledged record byte for byte. Prints "READY" once recovery is done.
//
// store-crash-child --full-disk DIR [one-queue|batches]
//
// For a small file system at DIR (the test mounts one): appends one keyed message to each of
// many new queues (each new queue's first entry needing a block of its own), or with
// `one-queue` all to one queue (the IndexFile's pages then run out first), or with `batches`
// batches of four messages, each to a new queue (the disk then runs out in the middle of a
// batch), until the disk is full; then reads every acknowledged message back, by queue and by
// key, and counts the messages of refused batches found stored all the same. Prints
// "DONE acked=A full=F verified=V stray=S", or "ERROR ..." (exit 1). The disk-use ratio guard
// is off, so only the file system says no.
#if canImport(Glibc)
import Glibc
#endif
import RocketMQStore

enum CrashChildPayload {
    /// Deterministic body bytes for `key` (SplitMix64 seeded by FNV-1a of the key).
    static func body(key: String, length: Int) -> [UInt8] {
        var state: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in key.utf8 { state = (state ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        var out = [UInt8]()
        out.reserveCapacity(length)
        while out.count < length {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            for i in 0..<8 where out.count < length { out.append(UInt8(truncatingIfNeeded: z >> (8 * UInt64(i)))) }
        }
        return out
    }
}

func say(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
}

/// The store on `config`, or "ERROR ..." and exit status 1.
func openStore(_ config: StoreConfiguration) -> MessageStore {
    do {
        return try MessageStore(configuration: config)
    } catch {
        say("ERROR \(error)")
        exit(1)
    }
}

let args = CommandLine.arguments
if args.count >= 3, args[1] == "--full-disk" {
    await fillTheDisk(args[2], mode: args.count > 3 ? args[3] : "many-queues")
    exit(0)
}
guard args.count == 6, let writers = Int(args[3]), let segmentSize = Int64(args[4]) else {
    say("usage: store-crash-child DIR sync|async WRITERS SEGMENT_SIZE RUN_ID")
    exit(2)
}
var config = StoreConfiguration(dataDirectory: args[1])
config.flushMode = args[2] == "sync" ? .sync : .async
config.commitLogSegmentSize = segmentSize
config.consumeQueueFileEntries = 1000
config.indexSlots = 4096
config.indexEntries = 20_000
config.maxMessageSize = 64 * 1024
config.checkpointInterval = .milliseconds(50)
config.flushInterval = .milliseconds(20)
config.flushDirtyPages = 64
let runId = args[5]

let store = openStore(config)
say("READY")

await withTaskGroup(of: Void.self) { group in
    for w in 0..<writers {
        group.addTask {
            var seq = 0
            while true {
                let key = "r\(runId)-w\(w)-\(seq)"
                var h: UInt64 = 0
                for b in key.utf8 { h = h &* 31 &+ UInt64(b) }
                let length = 1 + Int(h % 700)
                let message = MessageToAppend(
                    topic: "T\(w % 3)", queueId: Int32(w % 4), body: CrashChildPayload.body(key: key, length: length),
                    properties: [MessageProperty.keys: key, MessageProperty.uniqueKey: "U-" + key, MessageProperty.tags: "tag\(seq % 3)"],
                    bornTimestamp: Int64(seq), bornHost: "10.0.0.\(w % 250):\(1000 + w)")
                do {
                    let r = try await store.append(message)
                    say("A \(r.physicalOffset) \(message.topic) \(message.queueId) \(r.queueOffset) \(key) \(length)")
                } catch {
                    say("E \(error)")
                }
                seq += 1
            }
        }
    }
}

/// `--full-disk`: see the header.
/// `messages` appended as one batch, once flushed.
func appendBatch(_ store: MessageStore, _ messages: [MessageToAppend]) async throws(StoreError) -> [AppendResult] {
    var encoded: [EncodedMessage] = []
    for message in messages { encoded.append(try store.encode(message)) }
    let outcome = await withCheckedContinuation { continuation in
        store.append(batch: encoded, onWritten: { _ in }) { continuation.resume(returning: $0) }
    }
    return try outcome.get()
}

func fillTheDisk(_ dir: String, mode: String) async {
    let oneQueue = mode == "one-queue", batches = mode == "batches"
    var config = StoreConfiguration(dataDirectory: dir)
    config.flushMode = .sync
    config.commitLogSegmentSize = 1 << 20
    config.consumeQueueFileEntries = oneQueue ? 300_000 : 1000  // one queue: no new file on the way
    config.indexSlots = 4096
    config.indexEntries = 20_000
    config.diskHardLimitRatio = 2  // never reached: the file system's ENOSPC is what this tests
    config.diskCleanRatio = 2
    let store = openStore(config)
    var acked: [(topic: String, key: String, offset: Int64, queueOffset: Int64)] = []
    var full = 0
    var refusedTopics: [String] = []
    for i in 0..<5_000 where batches && full < 20 {
        let messages = (0..<4).map { j in
            MessageToAppend(
                topic: "F\(i)-\(j)", queueId: 0, body: CrashChildPayload.body(key: "full-\(i)-\(j)", length: 100),
                properties: [MessageProperty.keys: "full-\(i)-\(j)"], bornTimestamp: Int64(i), bornHost: "10.0.0.1:1000")
        }
        do {
            for (j, r) in try await appendBatch(store, messages).enumerated() {
                acked.append((messages[j].topic, "full-\(i)-\(j)", r.physicalOffset, r.queueOffset))
            }
        } catch .diskFull {
            full += 1
            refusedTopics += messages.map(\.topic)
        } catch {
            say("ERROR batch \(i): \(error)")
            exit(1)
        }
    }
    for i in 0..<5_000 where !batches && full < 20 {
        let key = "full-\(i)"
        let message = MessageToAppend(
            topic: oneQueue ? "F" : "F\(i)", queueId: 0, body: CrashChildPayload.body(key: key, length: 100),
            // One queue: eight keys a message, so that the IndexFile needs new pages before its
            // ConsumeQueue or the CommitLog segment does.
            properties: [MessageProperty.keys: oneQueue ? (0..<8).map { "\(key)\($0 == 0 ? "" : "-\($0)")" }.joined(separator: " ") : key],
            bornTimestamp: Int64(i), bornHost: "10.0.0.1:1000")
        do {
            let r = try await store.append(message)
            acked.append((message.topic, key, r.physicalOffset, r.queueOffset))
        } catch .diskFull {
            full += 1
        } catch {
            say("ERROR append \(i): \(error)")
            exit(1)
        }
    }
    var verified = 0
    for a in acked {
        guard let m = try? store.messages(topic: a.topic, queueId: 0, from: a.queueOffset, maxCount: 1).messages.first,
              m.physicalOffset == a.offset, m.keys.first == a.key, m.body == CrashChildPayload.body(key: a.key, length: 100),
              store.messages(key: a.key, topic: a.topic).map(\.physicalOffset) == [a.offset]
        else {
            say("ERROR acknowledged \(a.key) does not read back")
            exit(1)
        }
        verified += 1
    }
    let stray = refusedTopics.filter { store.maxOffset(topic: $0, queueId: 0) > 0 }.count
    say("DONE acked=\(acked.count) full=\(full) verified=\(verified) stray=\(stray)")
    store.shutdown()
}
