import NIOCore

/// A FIFO of `ByteBuffer`s that holds its first buffer inline: a queue that never holds more than
/// one at a time (a unary call's request or response) allocates nothing. Not thread-safe; owned by
/// one stream on its event loop.
struct BufferQueue {
    /// The first buffer; `nil` only when the queue is empty.
    private var head: ByteBuffer?
    /// The buffers after `head`, from index `restStart` on.
    private var rest: [ByteBuffer] = []
    private var restStart = 0

    var isEmpty: Bool { head == nil }
    var count: Int { head == nil ? 0 : 1 + rest.count - restStart }
    var first: ByteBuffer? { head }

    mutating func append(_ buffer: ByteBuffer) {
        if head == nil {
            head = buffer
        } else {
            rest.append(buffer)
        }
    }

    mutating func popFirst() -> ByteBuffer? {
        guard let buffer = head else { return nil }
        if restStart == rest.count {
            head = nil
        } else {
            head = rest[restStart]
            restStart += 1
            if restStart == rest.count {
                rest.removeAll(keepingCapacity: true)
                restStart = 0
            } else if restStart >= 64 && restStart * 2 >= rest.count {
                rest.removeFirst(restStart)
                restStart = 0
            }
        }
        return buffer
    }

    /// Replaces the first buffer (after a partial read from it).
    mutating func replaceFirst(_ buffer: ByteBuffer) {
        guard head != nil else { return }
        head = buffer
    }

    mutating func removeAll() {
        head = nil
        rest.removeAll()
        restStart = 0
    }

    /// The queued buffers in order.
    var all: [ByteBuffer] {
        guard let head else { return [] }
        return [head] + rest[restStart...]
    }
}
