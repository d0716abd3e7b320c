import Testing

@testable import RocketRPC

@Suite("Received header blocks")
struct HeaderBlockTests {
    private static func append(_ name: String, _ value: String, to block: inout HeaderBlock) {
        Array(name.utf8).withUnsafeBytes { n in Array(value.utf8).withUnsafeBytes { v in block.append(name: n, value: v) } }
    }

    private static func fields(of block: HeaderBlock) -> [String] {
        var out: [String] = []
        block.forEachField { index, name, value in
            out.append("\(index) \(String(decoding: name, as: UTF8.self))=\(String(decoding: value, as: UTF8.self))")
        }
        return out
    }

    @Test func fieldsComeBackInOrderWithTheirBytesWhateverTheirLengths() {
        var block = HeaderBlock()
        let long = String(repeating: "v", count: 70_000)
        Self.append(":path", "/a.B/C", to: &block)
        Self.append("x-empty", "", to: &block)
        Self.append("x-long", long, to: &block)
        Self.append("x-last", "z", to: &block)
        #expect(block.count == 4)
        #expect(Self.fields(of: block) == ["0 :path=/a.B/C", "1 x-empty=", "2 x-long=\(long)", "3 x-last=z"])
        #expect(block.name(at: 2) == "x-long")
        #expect(block.value(at: 3) == "z")
        #expect(block.value(at: 1) == "")
        #expect(block.listSize == (5 + 6 + 32) + (7 + 32) + (6 + 70_000 + 32) + (6 + 1 + 32))
    }

    @Test func aResetBlockHoldsOnlyTheNextBlocksFields() {
        var block = HeaderBlock()
        Self.append("x-old", "1", to: &block)
        Self.append("x-older", "2", to: &block)
        block.reset()
        #expect(block.count == 0 && block.listSize == 0)
        Self.append("x-new", "3", to: &block)
        #expect(Self.fields(of: block) == ["0 x-new=3"])

        // Copying fields out of a block (a request's metadata) keeps only what was copied.
        var copy = HeaderBlock()
        copy.reserveCapacity(for: block)
        block.forEachField { _, name, value in copy.append(name: name, value: value) }
        block.reset()
        Self.append("x-other", "4", to: &block)
        #expect(Self.fields(of: copy) == ["0 x-new=3"])
    }

    @Test func aCopyKeepsItsFieldsWhileTheOriginalIsResetAndRefilled() {
        var block = HeaderBlock()
        for i in 0..<40 { Self.append("x-field-\(i)", String(repeating: "v", count: i), to: &block) }
        let copy = block
        var whole = HeaderBlock()
        whole.append(contentsOf: block)
        #expect(whole.hasSameFields(as: block) && whole.byteCount == block.byteCount)

        // The session reuses its block for the next HEADERS; what a call kept must not change.
        block.reset()
        Self.append("x-next", "1", to: &block)
        #expect(copy.count == 40 && Self.fields(of: copy)[39] == "39 x-field-39=\(String(repeating: "v", count: 39))")
        #expect(Self.fields(of: block) == ["0 x-next=1"])
        #expect(!block.hasSameFields(as: copy) && whole.hasSameFields(as: copy))

        // Same fields in a block with more room after them are still the same fields.
        var roomy = HeaderBlock()
        roomy.reserveCapacity(adding: 4096)
        Self.append("x-next", "1", to: &roomy)
        #expect(roomy.hasSameFields(as: block) && roomy.byteCount == block.byteCount)
        Self.append("x-more", "2", to: &roomy)
        #expect(!roomy.hasSameFields(as: block))
    }
}

@Suite("Request header reuse")
struct RequestHeaderCacheTests {
    private func key(_ path: String, _ metadata: Metadata) throws -> RequestHeaderCache.Key {
        RequestHeaderCache.Key(path: path, compression: nil, timeout: nil, metadata: try #require(metadata.entriesIdentity))
    }

    /// A block is kept only for a key that missed recently already: metadata built anew for
    /// every call (a request id in each) never fills the cache, and calls that alternate between
    /// a few methods (a send, then a heartbeat) still get theirs kept.
    @Test func onlyKeysSeenAgainAreKeptAlsoWhenTheyAlternate() throws {
        let cache = RequestHeaderCache()
        var repeated = Metadata()
        repeated.add("x-mq-client-id", "c1")
        let block = HeaderBlock([(":path", "/a")])
        for round in 0..<3 {
            for path in ["/a", "/b"] {
                let (found, keep) = cache.block(for: try key(path, repeated))
                #expect((found != nil) == (round == 2), "round \(round) \(path)")
                #expect(keep == (round == 1), "round \(round) \(path)")
                if keep { cache.insert(block, for: try key(path, repeated), metadata: repeated) }
            }
        }
        var kept: [Metadata] = []  // alive, so that no two get the same storage
        for index in 0..<20 {
            var fresh = Metadata()
            fresh.add("x-mq-request-id", "\(index)")
            kept.append(fresh)
            let (found, keep) = cache.block(for: try key("/a", fresh))
            #expect(found == nil && !keep, "call \(index)")
        }
        #expect(cache.block(for: try key("/a", repeated)).block != nil, "one-off metadata evicted nothing")
    }
}
