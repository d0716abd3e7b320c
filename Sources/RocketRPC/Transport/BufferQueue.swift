/// A FIFO of buffers (received messages, outgoing chunks) that holds its first element inline: a
/// queue that never holds more than one at a time (a unary call's request or response) allocates
/// nothing. Not thread-safe; owned by one stream on its event loop.
struct BufferQueue<Element> {
    /// The first element; `nil` only when the queue is empty.
    private var head: Element?
    /// The elements after `head`, from index `restStart` on.
    private var rest: [Element] = []
    private var restStart = 0

    var isEmpty: Bool { head == nil }
    var count: Int { head == nil ? 0 : 1 + rest.count - restStart }
    var first: Element? { head }

    mutating func append(_ buffer: Element) {
        if head == nil {
            head = buffer
        } else {
            rest.append(buffer)
        }
    }

    mutating func popFirst() -> Element? {
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

    /// Lets `body` replace any queued element, in order.
    mutating func updateEach(_ body: (inout Element) -> Void) {
        guard var first = head else { return }
        body(&first)
        head = first
        for index in restStart..<rest.count { body(&rest[index]) }
    }

    /// Replaces the first element (after a partial read from it).
    mutating func replaceFirst(_ buffer: Element) {
        guard head != nil else { return }
        head = buffer
    }

    mutating func removeAll() {
        head = nil
        rest.removeAll()
        restStart = 0
    }

    /// The queued elements in order.
    var all: [Element] {
        guard let head else { return [] }
        return [head] + rest[restStart...]
    }
}
