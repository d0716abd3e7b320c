/// Byte arrays written in place, allocated through the standard library's code specialized for
/// `UInt8`: the store's copy of RocketProto's `ByteArray` (the store depends on no wire module),
/// for the record encoder, which allocates one array per message.
///
/// `[UInt8](unsafeUninitializedCapacity:initializingWith:)` allocates through an unspecialized
/// entry point that looks the storage's generic metadata up in the runtime's hash table on every
/// call (~300 of ~700 instructions, callgrind). Appending a sequence to an empty array allocates
/// through the specialized growth path; the sequence claims its bytes without writing them, and
/// `body` then writes every one in place.
enum ByteArray {
    /// An array of `count` bytes, every one of which `body` must write.
    static func make(count: Int, _ body: (UnsafeMutableBufferPointer<UInt8>) -> Void) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.append(contentsOf: Unwritten(count: count))
        bytes.withUnsafeMutableBufferPointer { body($0) }
        return bytes
    }

    /// `count` bytes that the array's new storage takes as they are (`UInt8` is trivial).
    private struct Unwritten: Sequence {
        let count: Int

        var underestimatedCount: Int { count }

        func makeIterator() -> EmptyCollection<UInt8>.Iterator { EmptyCollection<UInt8>.Iterator() }

        func _copyContents(initializing buffer: UnsafeMutableBufferPointer<UInt8>) -> (EmptyCollection<UInt8>.Iterator, Int) {
            precondition(buffer.count >= count, "the array reserved less than the sequence's count")
            return (EmptyCollection<UInt8>.Iterator(), count)
        }
    }
}
