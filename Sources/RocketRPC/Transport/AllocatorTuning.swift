/// glibc malloc settings for a process serving many small requests on several threads.
///
/// By default glibc trims a thread arena's top whenever a free leaves 128 KiB unused there
/// (`madvise(MADV_DONTNEED)`), and the next request's allocations fault the pages back in:
/// under load that was ~1,000 `madvise` calls and ~10,000 page faults per 10,000 requests,
/// 15% of a broker's throughput. Call once, early in `main`.
public enum AllocatorTuning {
    /// Keeps up to 128 MiB free at an arena's top instead of returning it to the kernel, and
    /// serves allocations below 4 MiB (message bodies, frames) from the heap, not `mmap`.
    public static func applyServerDefaults() {
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
