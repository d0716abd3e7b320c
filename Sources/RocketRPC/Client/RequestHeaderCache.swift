import Synchronization

/// A channel's recently built request header blocks, so that calls repeating a method with the
/// same metadata, compression and `grpc-timeout` (a client's usual case: one `CallOptions` value,
/// timeouts rounded by ``GRPCTimeout``) share one block instead of laying out every field again.
///
/// Metadata is matched by the identity of its entries' storage, which a cached entry keeps alive:
/// while it does, no other storage can have that address, and the entries cannot change in place
/// (they are not uniquely referenced), so the same identity means the same entries. Metadata built
/// anew per call (different storage each time) misses and is laid out as before. Thread-safe.
final class RequestHeaderCache: Sendable {
    /// What a request's header block is built from, besides the channel's fixed fields.
    struct Key: Equatable {
        var path: String
        var compression: CompressionAlgorithm?
        var timeout: TimeoutText?
        var metadata: Metadata.EntriesIdentity
    }

    private struct Entry {
        var key: Key
        /// Keeps the identified entries alive (see the type's comment).
        var metadata: Metadata
        var block: HeaderBlock
    }

    /// A few recent blocks: calls on a channel go to a handful of methods.
    private static let capacity = 4
    private let entries = Mutex<(slots: [Entry], next: Int)>(([], 0))

    func block(for key: Key) -> HeaderBlock? {
        entries.withLock { state in
            // By index: iterating the entries would copy (retain and release) each one.
            for index in state.slots.indices where state.slots[index].key == key { return state.slots[index].block }
            return nil
        }
    }

    func insert(_ block: HeaderBlock, for key: Key, metadata: Metadata) {
        let entry = Entry(key: key, metadata: metadata, block: block)
        entries.withLock { state in
            if state.slots.count < Self.capacity {
                state.slots.append(entry)
            } else {
                state.slots[state.next] = entry
                state.next = (state.next + 1) % Self.capacity
            }
        }
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
