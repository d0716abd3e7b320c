import Atomics
import Foundation

/// Faults in the pages just ahead of the writer on a second thread (`MADV_POPULATE_WRITE`),
/// so an append into the mapped segment is a plain `memcpy` instead of a page fault every
/// 4 KiB (page-cache allocation, `page_mkwrite`, block mapping: ~40% of an append's time).
///
/// When the thread falls behind (both cores busy serving requests, say), the writer populates
/// the next stretch itself, in one `madvise` rather than a fault per page: faulting page by
/// page cost ~8% of a broker's CPU under load. Populating a page never changes its content.
/// `@unchecked Sendable`: state is guarded by `condition`; `populated` is atomic.
final class Prefaulter: @unchecked Sendable {
    /// How far ahead of the write position pages are kept faulted in.
    static let window = 4 << 20
    private static let populateWrite: Int32 = 23  // MADV_POPULATE_WRITE, Linux 5.14+
    private static let page = 4096

    /// `offset` rounded up to a page boundary: `madvise` fails (EINVAL) on a range that does
    /// not start on one, so every range this class asks for starts and ends on pages.
    private static func pageUp(_ offset: Int) -> Int { (offset + page - 1) / page * page }

    private let condition = NSCondition()
    private var mapping: SegmentWriteMapping?
    private var target = 0
    private var done = 0
    private var stopping = false
    private var finished = false
    /// How far the current mapping is known populated (thread or writer), for the writer's check.
    private let populated = ManagedAtomic<Int>(0)
    /// What the writer populates itself when it catches up with the populated range.
    static let writerStep = 256 << 10
    /// Writer-side: how far the last request reached (touched only by the writer).
    private var requested = 0
    /// Writer-side: the mapping of the last request. Strong, like the thread's `mapping` (which
    /// already keeps the previous mapping until the next one replaces it): a `weak` reference
    /// here cost a side-table load on every append, 1.7% of a broker's CPU under load.
    private var requestedMapping: SegmentWriteMapping?

    func start() {
        let thread = Thread { [self] in self.run() }
        thread.name = "store-prefault"
        thread.start()
    }

    /// Writer: note that the write position in `mapping` is `offset`; wakes the thread when
    /// the faulted-in window runs low. One lock per half window, not per append.
    func advance(_ mapping: SegmentWriteMapping, to offset: Int) {
        if requestedMapping === mapping {
            let ahead = populated.load(ordering: .relaxed)
            if offset + Prefaulter.writerStep / 4 > ahead && ahead < mapping.size {
                let from = max(ahead, offset / Prefaulter.page * Prefaulter.page)
                let to = min(mapping.size, Prefaulter.pageUp(from + Prefaulter.writerStep))
                if madvise(mapping.base + from, to - from, Prefaulter.populateWrite) == 0 {
                    populated.store(to, ordering: .relaxed)
                }
            }
            if offset + Prefaulter.window / 2 < requested { return }
        } else {
            populated.store(offset / 4096 * 4096, ordering: .relaxed)
        }
        requested = min(mapping.size, Prefaulter.pageUp(offset + Prefaulter.window))
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
            if mapping === m {
                done = ok ? to : target  // on failure give up on this window
                if ok && to > populated.load(ordering: .relaxed) { populated.store(to, ordering: .relaxed) }
            }
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
