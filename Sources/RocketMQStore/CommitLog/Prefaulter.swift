import Foundation

/// Faults in the pages just ahead of the writer on a second thread (`MADV_POPULATE_WRITE`),
/// so an append into the mapped segment is a plain `memcpy` instead of a page fault every
/// 4 KiB (page-cache allocation, `page_mkwrite`, block mapping: ~40% of an append's time).
///
/// Advisory only: if it falls behind, the writer faults pages in itself. Populating a page
/// never changes its content. `@unchecked Sendable`: state is guarded by `condition`.
final class Prefaulter: @unchecked Sendable {
    /// How far ahead of the write position pages are kept faulted in.
    static let window = 4 << 20
    private static let populateWrite: Int32 = 23  // MADV_POPULATE_WRITE, Linux 5.14+

    private let condition = NSCondition()
    private var mapping: SegmentWriteMapping?
    private var target = 0
    private var done = 0
    private var stopping = false
    private var finished = false
    /// Writer-side: how far the last request reached (touched only by the writer).
    private var requested = 0
    private weak var requestedMapping: SegmentWriteMapping?

    func start() {
        let thread = Thread { [self] in self.run() }
        thread.name = "store-prefault"
        thread.start()
    }

    /// Writer: note that the write position in `mapping` is `offset`; wakes the thread when
    /// the faulted-in window runs low. One lock per half window, not per append.
    func advance(_ mapping: SegmentWriteMapping, to offset: Int) {
        if requestedMapping === mapping && offset + Prefaulter.window / 2 < requested { return }
        requested = min(mapping.size, offset + Prefaulter.window)
        requestedMapping = mapping
        condition.lock()
        if self.mapping !== mapping {
            self.mapping = mapping
            done = offset / 4096 * 4096
        }
        target = requested
        condition.signal()
        condition.unlock()
    }

    private func run() {
        let step = 256 << 10
        while true {
            condition.lock()
            while !stopping && (mapping == nil || done >= target) { condition.wait() }
            if stopping {
                finished = true
                condition.broadcast()
                condition.unlock()
                return
            }
            guard let m = mapping else { condition.unlock(); continue }
            let from = done
            let to = min(target, from + step)
            condition.unlock()
            let ok = madvise(m.base + from, to - from, Prefaulter.populateWrite) == 0
            condition.lock()
            if mapping === m { done = ok ? to : target }  // on failure give up on this window
            condition.unlock()
        }
    }

    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while !finished { condition.wait() }
        mapping = nil
        condition.unlock()
    }
}
