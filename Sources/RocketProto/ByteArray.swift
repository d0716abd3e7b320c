/// Byte arrays written in place, allocated through the standard library's code specialized
/// for `UInt8`.
///
/// `[UInt8](unsafeUninitializedCapacity:initializingWith:)` and `[UInt8](repeating:count:)`
/// allocate through an unspecialized entry point of the standard library that looks the array
/// storage's generic metadata up in the runtime's hash table on every call: ~300 of ~700
/// instructions per allocation (callgrind), on every request serialized and, on the broker,
/// twice per `SendMessage`. Appending a sequence to an empty array allocates through the
/// specialized growth path instead; the sequence here claims its bytes without writing them,
/// and `body` then writes every one in place.
@usableFromInline
package enum ByteArray {
    /// An array of `count` bytes, every one of which `body` must write.
    @inlinable
    package static func make(count: Int, _ body: (UnsafeMutableBufferPointer<UInt8>) -> Void) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.append(contentsOf: Unwritten(count: count))
        bytes.withUnsafeMutableBufferPointer { body($0) }
        return bytes
    }

    /// `count` bytes that the array's new storage takes as they are (`UInt8` is trivial).
    @usableFromInline
    struct Unwritten: Sequence {
        @usableFromInline let count: Int

        @inlinable init(count: Int) { self.count = count }

        @inlinable var underestimatedCount: Int { count }

        @inlinable func makeIterator() -> EmptyCollection<UInt8>.Iterator { EmptyCollection<UInt8>.Iterator() }

        @inlinable
        func _copyContents(initializing buffer: UnsafeMutableBufferPointer<UInt8>) -> (EmptyCollection<UInt8>.Iterator, Int) {
            precondition(buffer.count >= count, "the array reserved less than the sequence's count")
            return (EmptyCollection<UInt8>.Iterator(), count)
        }
    }
}
