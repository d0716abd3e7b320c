import NIOCore

/// A FIFO of `ByteBuffer`s that allocates nothing until the first append (most unary streams queue
/// a single buffer). Not thread-safe; owned by one stream on its event loop.
struct BufferQueue {
    private var storage: [ByteBuffer] = []
    private var head = 0

    var isEmpty: Bool { head == storage.count }
    var count: Int { storage.count - head }
    var first: ByteBuffer? { isEmpty ? nil : storage[head] }

    mutating func append(_ buffer: ByteBuffer) {
        storage.append(buffer)
    }

    mutating func popFirst() -> ByteBuffer? {
        guard !isEmpty else { return nil }
        let buffer = storage[head]
        head += 1
        if head == storage.count {
            storage.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 64 && head * 2 >= storage.count {
            storage.removeFirst(head)
            head = 0
        }
        return buffer
    }

    /// Replaces the first buffer (after a partial read from it).
    mutating func replaceFirst(_ buffer: ByteBuffer) {
        guard !isEmpty else { return }
        storage[head] = buffer
    }

    mutating func removeAll() {
        storage.removeAll()
        head = 0
    }

    /// The queued buffers in order.
    var all: [ByteBuffer] { Array(storage[head...]) }
}
