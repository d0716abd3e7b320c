import Synchronization

/// A channel's recently built request header blocks, so that calls repeating a method with the
/// same metadata, compression and `grpc-timeout` (a client's usual case: one `CallOptions` value,
/// timeouts rounded by ``GRPCTimeout``) share one block instead of laying out every field again.
///
/// Metadata is matched by the identity of its entries' storage, which a cached entry keeps alive:
/// while it does, no other storage can have that address, and the entries cannot change in place
/// (they are not uniquely referenced), so the same identity means the same entries. Metadata built
/// anew per call (different storage each time; RocketMQ's clients add a request id to every call)
/// misses and is laid out as before; a block is kept only for a key that missed recently already,
/// so such calls do not churn the cache. Thread-safe.
final class RequestHeaderCache: Sendable {
    /// What a request's header block is built from, besides the channel's fixed fields.
    struct Key: Equatable, Sendable {
        var path: String
        var compression: CompressionAlgorithm?
        var timeout: TimeoutText?
        var metadata: Metadata.EntriesIdentity
    }

    private struct Entry: Sendable {
        var key: Key
        /// Keeps the identified entries alive (see the type's comment).
        var metadata: Metadata
        var block: HeaderBlock
    }

    /// A few recent blocks, and the keys of a few recent misses: calls on a channel go to a
    /// handful of methods. (A missed key's metadata is not kept alive: other metadata may get
    /// its address later, but a block is only ever kept with the metadata it was built from.)
    private let entries = Mutex<(blocks: Recent<Entry>, misses: Recent<Key>)>((Recent(), Recent()))

    /// The block kept for `key`; on a miss, whether to keep the one the caller builds now
    /// (``insert(_:for:metadata:)``): only when the same key missed recently.
    func block(for key: Key) -> (block: HeaderBlock?, keep: Bool) {
        entries.withLock { state in
            // By index: iterating the entries would copy (retain and release) each one.
            for index in state.blocks.items.indices where state.blocks.items[index].key == key {
                return (state.blocks.items[index].block, false)
            }
            if let missed = state.misses.items.firstIndex(of: key) {
                state.misses.remove(at: missed)
                return (nil, true)
            }
            state.misses.add(key)
            return (nil, false)
        }
    }

    func insert(_ block: HeaderBlock, for key: Key, metadata: Metadata) {
        let entry = Entry(key: key, metadata: metadata, block: block)
        entries.withLock { $0.blocks.add(entry) }
    }
}

/// At most four items, the oldest replaced by a new one once full.
private struct Recent<Element: Sendable>: Sendable {
    private static var capacity: Int { 4 }
    private(set) var items: [Element] = []
    /// The oldest item once full.
    private var next = 0

    mutating func add(_ item: Element) {
        if items.count < Self.capacity {
            items.append(item)
        } else {
            items[next] = item
            next = (next + 1) % Self.capacity
        }
    }

    mutating func remove(at index: Int) {
        items.remove(at: index)
        next = min(next, items.count)
    }
}

/// A `grpc-timeout` value (at most 8 digits and a unit) held inline: compared and copied without
/// an allocation.
struct TimeoutText: Equatable {
    private var low: UInt64 = 0
    private var high: UInt64 = 0
    private var count: UInt8 = 0

    init(_ bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count <= 16, "a grpc-timeout value has at most 9 bytes")
        count = UInt8(bytes.count)
        withUnsafeMutableBytes(of: &low) { low in
            withUnsafeMutableBytes(of: &high) { high in
                for (index, byte) in bytes.enumerated() {
                    if index < 8 { low[index] = byte } else { high[index - 8] = byte }
                }
            }
        }
    }

    func withBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        var copy = (low, high)
        return withUnsafeBytes(of: &copy) { body(UnsafeRawBufferPointer(rebasing: $0[..<Int(count)])) }
    }
}
