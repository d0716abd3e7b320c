import CJemalloc

/// The memory allocator of our executables: jemalloc (Debian's `libjemalloc-dev`).
///
/// Linked into the server and benchmark executables only, never into a library, so an application
/// using RocketMQClient keeps the allocator it chose. jemalloc takes over `malloc` for the whole
/// process (the Swift runtime's allocations included) because it precedes libc in the link.
///
/// Why not glibc's malloc: a server answers requests in batches (one socket read holds many), so
/// it frees many blocks of one size at once; glibc's per-thread cache holds 7 per size and the rest
/// goes through `_int_free`, `_int_malloc` and the arena lock. On jemalloc, measured in interleaved
/// runs on 2026-11-26, the broker spent 8.5 µs of CPU per produced message instead of 9.1–10.0 and
/// the producing client 7.2–7.3 µs instead of 7.8–8.2; the RPC server ~4% less per call. The
/// references BENCHMARKS.md compares with (Redis, nghttpd) run on jemalloc as well.
public enum ServerAllocator {
    /// Call once, first thing in `main`. Returns what serves `malloc`, for the startup log:
    /// `"jemalloc 5.3.0"`, or `"glibc malloc"` (then tuned as below) if jemalloc did not take over.
    @discardableResult
    public static func activate() -> String {
        if servesThisProcess {
            return "jemalloc \(version)"
        }
        tuneGlibc()
        return "glibc malloc"
    }

    /// Whether jemalloc serves the allocations the Swift runtime makes: its count of bytes this
    /// thread allocated grows by an allocation made the way Swift makes them.
    public static var servesThisProcess: Bool {
        guard let before = threadAllocatedBytes() else { return false }
        let probe = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 16)
        defer { probe.deallocate() }
        guard let after = threadAllocatedBytes() else { return false }
        return after &- before >= 4096
    }

    /// jemalloc's version, e.g. `5.3.0`.
    public static var version: String {
        var value: UnsafePointer<CChar>?
        var size = MemoryLayout<UnsafePointer<CChar>?>.size
        guard mallctl("version", &value, &size, nil, 0) == 0, let value else { return "unknown" }
        let full = String(cString: value)  // "5.3.0-0-g<commit>"
        return String(full.prefix { $0 != "-" })
    }

    private static func threadAllocatedBytes() -> UInt64? {
        var value: UInt64 = 0
        var size = MemoryLayout<UInt64>.size
        return mallctl("thread.allocated", &value, &size, nil, 0) == 0 ? value : nil
    }

    /// The settings that served before jemalloc: by default glibc trims a thread arena's top
    /// whenever a free leaves 128 KiB unused there (`madvise(MADV_DONTNEED)`) and the next request's
    /// allocations fault the pages back in (under load ~1,000 `madvise` calls and ~10,000 page faults
    /// per 10,000 requests, 15% of a broker's throughput). Keeps up to 128 MiB free at an arena's top
    /// and serves allocations below 4 MiB from the heap, not `mmap`.
    private static func tuneGlibc() {
        #if os(Linux)
        // <malloc.h> is not in the Glibc module; these option numbers are glibc's stable ABI.
        let trimThreshold: Int32 = -1, topPad: Int32 = -2, mmapThreshold: Int32 = -3
        _ = glibcMallopt(trimThreshold, 128 << 20)
        _ = glibcMallopt(topPad, 16 << 20)
        _ = glibcMallopt(mmapThreshold, 4 << 20)
        #endif
    }
}

#if os(Linux)
@_silgen_name("mallopt")
private func glibcMallopt(_ option: Int32, _ value: Int32) -> Int32
#endif
