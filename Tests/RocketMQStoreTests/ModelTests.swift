import Testing
@testable import RocketMQStore

/// Random operation sequences (appends, reads with tag filters, key lookups, clean restarts,
/// crashes) checked against a plain in-memory model, with small random segment, queue-file
/// and index sizes so roll-overs happen everywhere. Both write paths: async (mapped) and
/// sync (pwrite + group commit).
@Suite struct ModelTests {
    struct Sent: Equatable {
        var body: [UInt8]
        var key: String
        var tag: String
    }

    @Test(arguments: [UInt64(1), 2, 3, 4])
    func randomOperationsMatchAModel(seed: UInt64) async throws {
        var rng = SplitMix64(seed: seed)
        let dir = TempDirectory("model")
        var config = testConfiguration(dir.path, mode: seed % 2 == 0 ? .sync : .async,
                                       segmentSize: Int64.random(in: 2048...16384, using: &rng))
        config.consumeQueueFileEntries = Int.random(in: 3...20, using: &rng)
        config.indexSlots = Int.random(in: 1...16, using: &rng)
        config.indexEntries = Int.random(in: 8...64, using: &rng)
        var store = try openStore(config)
        var model = [QueueID: [Sent]]()
        let ids = ["A", "B"].flatMap { t in (0..<3).map { QueueID(topic: t, queueId: Int32($0)) } }
        let tags = ["red", "green", "blue"]
        for step in 0..<400 {
            let roll = Int.random(in: 0..<100, using: &rng)
            switch roll {
            case 0..<75:
                let id = ids[Int.random(in: 0..<ids.count, using: &rng)]
                let sent = Sent(body: randomBytes(Int.random(in: 0...1500, using: &rng), &rng), key: "k\(step)",
                                tag: tags[Int.random(in: 0..<3, using: &rng)])
                let r = try await store.append(message(id.topic, queue: id.queueId, body: sent.body, tag: sent.tag, keys: sent.key))
                #expect(r.queueOffset == Int64(model[id, default: []].count), "step \(step)")
                model[id, default: []].append(sent)
            case 75..<87:
                let id = ids[Int.random(in: 0..<ids.count, using: &rng)]
                let expected = model[id, default: []]
                let from = Int.random(in: 0...expected.count, using: &rng)
                let filter: Set<String>? = Bool.random(using: &rng) ? [tags[Int.random(in: 0..<3, using: &rng)]] : nil
                let maxCount = Int.random(in: 1...10, using: &rng)
                let got = try store.messages(topic: id.topic, queueId: id.queueId, from: Int64(from), maxCount: maxCount, tagFilter: filter)
                let want = expected.enumerated().dropFirst(from).filter { filter?.contains($0.element.tag) ?? true }.prefix(maxCount)
                #expect(got.messages.map(\.body) == want.map(\.element.body), "step \(step): read \(id) from \(from)")
                #expect(got.messages.map(\.queueOffset) == want.map { Int64($0.offset) })
            case 87..<92:
                let all = model.flatMap { id, list in list.map { (id, $0) } }
                if let (id, sent) = all.randomElement(using: &rng) {
                    #expect(store.messages(key: sent.key, topic: id.topic).map(\.body) == [sent.body], "step \(step): key \(sent.key)")
                }
            case 92..<96:
                store.shutdown()
                store = try openStore(config)
            default:
                store.abandonForTesting()  // a crash that keeps the page cache, as SIGKILL does
                store = try openStore(config)
            }
        }
        for id in ids {
            let expected = model[id, default: []]
            let got = try store.messages(topic: id.topic, queueId: id.queueId, from: 0, maxCount: 10_000)
            #expect(got.messages.map(\.body) == expected.map(\.body), "final read of \(id)")
            #expect(got.messages.map(\.keys) == expected.map { [$0.key] })
        }
        try store.verifyConsistency()
        store.shutdown()
    }
}
