#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An open file used with positional I/O (`pread`/`pwrite`), so any number of threads
/// may read it at once while one thread writes.
///
/// The descriptor closes when the last reference goes away, which is what lets retention
/// delete a segment while a reader still holds it: the reader finishes on the unlinked file.
/// `@unchecked Sendable`: the only state is the immutable descriptor; positional syscalls
/// are thread-safe.
final class StoreFile: @unchecked Sendable {
    let path: String
    let fd: Int32

    /// Opens (creating if needed) `path` for reading and writing.
    init(path: String, create: Bool = true) throws(StoreError) {
        self.path = path
        let flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0)
        let fd = open(path, flags, 0o644)
        guard fd >= 0 else { throw .io(operation: "open", path: path, errno: errno) }
        self.fd = fd
    }

    deinit { close(fd) }

    var size: Int64 {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return 0 }
        return Int64(st.st_size)
    }

    func truncate(to length: Int64) throws(StoreError) {
        guard ftruncate(fd, off_t(length)) == 0 else { throw .io(operation: "ftruncate", path: path, errno: errno) }
    }

    /// Reserves disk blocks for the first `length` bytes (and sets the size to at least that).
    func allocate(_ length: Int64) throws(StoreError) {
        let r = posix_fallocate(fd, 0, off_t(length))
        if r == EOPNOTSUPP || r == EINVAL {
            try truncate(to: length)  // file systems without fallocate: sparse file
        } else if r != 0 {
            throw StoreError.spaceFailure("fallocate", path: path, errno: r)
        }
    }

    /// Writes all of `buffer` at `offset`, retrying short writes and EINTR.
    func write(_ buffer: UnsafeRawBufferPointer, at offset: Int64) throws(StoreError) {
        guard var p = buffer.baseAddress else { return }
        var left = buffer.count
        var at = offset
        while left > 0 {
            let n = pwrite(fd, p, left, off_t(at))
            if n < 0 {
                if errno == EINTR { continue }
                throw StoreError.spaceFailure("pwrite", path: path, errno: errno)
            }
            // Nothing written and no error: retrying would spin.
            if n == 0 { throw .io(operation: "pwrite", path: path, errno: EIO) }
            p += n
            left -= n
            at += Int64(n)
        }
    }

    func write(_ bytes: [UInt8], at offset: Int64) throws(StoreError) {
        try StoreError.catching { try bytes.withUnsafeBytes { raw in try write(raw, at: offset) } }
    }

    /// Writes zeros over `range` (the CommitLog writers prepare the stretch ahead of them so).
    func writeZeros(_ range: Range<Int>) throws(StoreError) {
        var at = range.lowerBound
        while at < range.upperBound {
            let count = min(range.upperBound - at, Self.zerosCount)
            try write(UnsafeRawBufferPointer(start: Self.zeros, count: count), at: Int64(at))
            at += count
        }
    }

    /// Zeros for `writeZeros`, allocated once and never written.
    private static let zerosCount = 256 << 10
    nonisolated(unsafe) private static let zeros = UnsafeRawPointer(calloc(1, zerosCount)!)

    /// Reads up to `buffer.count` bytes at `offset`; returns how many (fewer only at end of file).
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws(StoreError) -> Int {
        guard var p = buffer.baseAddress else { return 0 }
        var left = buffer.count
        var at = offset
        var total = 0
        while left > 0 {
            let n = pread(fd, p, left, off_t(at))
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(operation: "pread", path: path, errno: errno)
            }
            if n == 0 { break }
            p += n
            left -= n
            at += Int64(n)
            total += n
        }
        return total
    }

    func read(count: Int, at offset: Int64) throws(StoreError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let n = try StoreError.catching { try out.withUnsafeMutableBytes { raw in try read(into: raw, at: offset) } }
        if n < count { out.removeLast(count - n) }
        return out
    }

    func sync() throws(StoreError) {
        guard fdatasync(fd) == 0 else { throw .io(operation: "fdatasync", path: path, errno: errno) }
    }

    /// Asks the kernel to drop the file's clean cached pages in the range (dirty or mapped ones
    /// stay). Advice: nothing is lost, a later read reads the disk.
    func dropFromCache(offset: Int64, count: Int64) {
        _ = posix_fadvise(fd, off_t(offset), off_t(count), POSIX_FADV_DONTNEED)
    }
}

/// A whole file mapped read-write and shared, for the fixed-size ConsumeQueue and IndexFile
/// files whose small random writes would each cost a syscall otherwise.
///
/// `@unchecked Sendable`: writers and readers coordinate through the owning type (one
/// writer; readers only look at entries published through an atomic).
final class MappedFile: @unchecked Sendable {
    let path: String
    let size: Int
    let base: UnsafeMutableRawPointer
    /// Kept open for ``reserve(_:ahead:)``.
    private let file: StoreFile
    /// One bit per page: set once `reserve` allocated the page's blocks (or found no way to).
    /// Only the file's single writer touches it, so its accesses skip the runtime's dynamic
    /// exclusivity checks (callgrind: ~600 instructions per `SendMessage`, in ~8 calls).
    @exclusivity(unchecked) private var reservedPages: [UInt64]

    /// Opens or creates `path`, extends it to `size` bytes (zero-filled) and maps it.
    /// `wasShort` says the file existed but was shorter (a torn or truncated file).
    init(path: String, size: Int) throws(StoreError) {
        self.path = path
        self.size = size
        let file = try StoreFile(path: path)
        self.file = file
        reservedPages = Array(repeating: 0, count: (size + Self.page * 64 - 1) / (Self.page * 64))
        let existing = file.size
        wasShort = existing > 0 && existing < Int64(size)
        if existing < Int64(size) { try file.truncate(to: Int64(size)) }
        guard let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, file.fd, 0), p != MAP_FAILED else {
            throw .io(operation: "mmap", path: path, errno: errno)
        }
        // No readahead: these files are mostly hole, and a fault on a new page otherwise read
        // ahead (zero-filled) a whole window of them, under the writer's lock for a new queue.
        // Measured: the first message to each of 8,000 new queues took 97 s in all, and a
        // restart's RSS grew by ~70 KiB per queue. Faults now bring in the page they need.
        _ = madvise(p, size, MADV_RANDOM)
        base = p
    }

    let wasShort: Bool

    deinit { munmap(base, size) }

    private static let page = 4096

    /// Allocates the disk blocks under the pages of `range` that no earlier call reserved, so
    /// that stores there cannot fault on a full disk. The file is sparse (a ConsumeQueue or
    /// IndexFile is mostly hole), and storing into a hole of a shared mapping allocates its
    /// block in the page fault, where no space left means SIGBUS, the end of the process.
    /// Call it before the stores; a full disk is then `StoreError.diskFull`, thrown here.
    ///
    /// `ahead`: bytes past `range` to reserve with it when a new page is needed (for a file
    /// written front to back, so that one `fallocate` covers many entries). The single
    /// writer's call; the pages already reserved cost a bit test each.
    func reserve(_ range: Range<Int>, ahead: Int = 0) throws(StoreError) {
        let page = Self.page
        let first = range.lowerBound / page
        let last = (Swift.min(range.upperBound, size) - 1) / page
        guard first <= last, (first...last).contains(where: { !isReserved($0) }) else { return }
        let end = Swift.min(size, (range.upperBound + ahead + page - 1) / page * page)
        let r = posix_fallocate(file.fd, off_t(first * page), off_t(end - first * page))
        // A file system without fallocate (glibc then writes a zero into each block itself
        // where it can): nothing better to do than go on, as the file itself was created.
        guard r == 0 || r == EOPNOTSUPP || r == EINVAL else {
            throw StoreError.spaceFailure("fallocate", path: path, errno: r)
        }
        for p in first..<((end + page - 1) / page) { reservedPages[p / 64] |= 1 << UInt64(p % 64) }  // a short last page too
    }

    private func isReserved(_ page: Int) -> Bool {
        reservedPages[page / 64] & (1 << UInt64(page % 64)) != 0
    }

    /// Zeroes the bytes from `offset` to the end, writing only pages of the file's data that
    /// are not zero already: a hole reads as zeros, and writing zeros there would allocate it
    /// (a ConsumeQueue file is mostly hole past its last entry: zeroing its tail by `memset`
    /// made every restart allocate each queue's whole file). Returns the byte range it
    /// changed, if any.
    func zeroTail(from offset: Int) -> Range<Int>? {
        guard offset < size else { return nil }
        let page = 4096
        var changed: Range<Int>?
        for extent in dataExtents(from: offset) {
            var at = extent.lowerBound
            while at < extent.upperBound {
                let end = min(extent.upperBound, (at / page + 1) * page)
                let bytes = UnsafeRawBufferPointer(start: base + at, count: end - at)
                if bytes.contains(where: { $0 != 0 }) {
                    (base + at).initializeMemory(as: UInt8.self, repeating: 0, count: end - at)
                    changed = (changed?.lowerBound ?? at)..<end
                }
                at = end
            }
        }
        return changed
    }

    /// Linux's `SEEK_DATA` and `SEEK_HOLE` (Glibc declares them only under `_GNU_SOURCE`).
    private static let seekData: Int32 = 3
    private static let seekHole: Int32 = 4

    /// The ranges at or after `offset` where the file may hold data (not holes), by
    /// `SEEK_DATA`/`SEEK_HOLE`; the whole rest where the file system cannot tell.
    private func dataExtents(from offset: Int) -> [Range<Int>] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [offset..<size] }
        defer { close(fd) }
        var extents: [Range<Int>] = []
        var at = off_t(offset)
        while at < off_t(size) {
            let data = lseek(fd, at, Self.seekData)
            if data < 0 {
                if errno == ENXIO { break }  // no data past `at`
                return [offset..<size]
            }
            var hole = lseek(fd, data, Self.seekHole)
            if hole < 0 { hole = off_t(size) }
            let lower = max(Int(data), offset), upper = min(Int(hole), size)
            if lower < upper { extents.append(lower..<upper) }
            at = hole
        }
        return extents
    }

    /// Writes dirty pages in `range` (byte offsets) to disk.
    func sync(_ range: Range<Int>? = nil) throws(StoreError) {
        let page = 4096
        let r = range ?? 0..<size
        let start = r.lowerBound / page * page
        let length = min(size, r.upperBound) - start
        guard length > 0 else { return }
        guard msync(base + start, length, MS_SYNC) == 0 else { throw .io(operation: "msync", path: path, errno: errno) }
    }
}

/// Small file-system operations on paths.
enum FileSystem {
    static func makeDirectory(_ path: String) throws(StoreError) {
        var current = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            current += "/" + part
            if mkdir(current, 0o755) != 0 && errno != EEXIST {
                throw .io(operation: "mkdir", path: current, errno: errno)
            }
        }
    }

    static func list(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names = [String]()
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    static func remove(_ path: String) throws(StoreError) {
        guard unlink(path) == 0 || errno == ENOENT else { throw .io(operation: "unlink", path: path, errno: errno) }
    }

    /// Seconds since the epoch of the last modification, or nil.
    static func modificationTime(_ path: String) -> Double? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9
    }

    static func syncDirectory(_ path: String) throws(StoreError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw .io(operation: "open", path: path, errno: errno) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw .io(operation: "fsync", path: path, errno: errno) }
    }

    /// Fraction of the file system holding `path` that is in use (0...1), as `df` shows it.
    static func usedRatio(of path: String) -> Double {
        var s = statvfs()
        guard statvfs(path, &s) == 0 else { return 0 }
        return usedRatio(blocks: UInt64(s.f_blocks), free: UInt64(s.f_bfree), available: UInt64(s.f_bavail))
    }

    /// `df`'s Use%: used blocks over those a non-root writer could ever have (used plus
    /// available), so that blocks reserved for root count neither way. Counting them as used
    /// ((blocks - available) / blocks) put a file system with a large reserve far above what
    /// `df` shows: one with 62% reserved read 90% full at 21% used, and appends were refused.
    static func usedRatio(blocks: UInt64, free: UInt64, available: UInt64) -> Double {
        let used = blocks >= free ? blocks - free : 0
        guard used + available > 0 else { return 0 }
        return Double(used) / Double(used + available)
    }

    /// A 20-digit zero-padded decimal, the name of segment and queue files.
    static func offsetName(_ offset: Int64) -> String {
        let s = String(offset)
        return String(repeating: "0", count: max(0, 20 - s.count)) + s
    }
}

/// Writes config-like files so a reader sees the old or the new content, never a mix:
/// temp file, `fsync`, `rename`, `fsync` of the directory.
public enum AtomicFile {
    /// Replaces the file at `path` with `bytes`, atomically and durably.
    public static func write(_ bytes: [UInt8], to path: String) throws(StoreError) {
        let dir = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        let temp = path + ".tmp"
        let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .io(operation: "open", path: temp, errno: errno) }
        var ok = true
        var failure: StoreError?
        bytes.withUnsafeBytes { raw in
            var p = raw.baseAddress
            var left = raw.count
            while left > 0, let q = p {
                let n = Glibc.write(fd, q, left)
                if n < 0 {
                    if errno == EINTR { continue }
                    ok = false
                    failure = .io(operation: "write", path: temp, errno: errno)
                    break
                }
                p = q + n
                left -= n
            }
        }
        if ok && fsync(fd) != 0 { ok = false; failure = .io(operation: "fsync", path: temp, errno: errno) }
        close(fd)
        if let failure, !ok { unlink(temp); throw failure }
        guard rename(temp, path) == 0 else { throw .io(operation: "rename", path: path, errno: errno) }
        try FileSystem.syncDirectory(dir.isEmpty ? "." : dir)
    }

    /// Reads a whole file, or nil if it does not exist.
    public static func read(_ path: String) throws(StoreError) -> [UInt8]? {
        guard FileSystem.exists(path) else { return nil }
        let file = try StoreFile(path: path, create: false)
        return try file.read(count: Int(file.size), at: 0)
    }
}

/// A shared, writable mapping of the CommitLog segment being written: appends become a
/// `memcpy` into the page cache instead of a `pwrite` syscall each (the page cache is the
/// same one `pread` readers and `fdatasync` see).
///
/// Pages are prepared ahead of the writer a stretch at a time (`SegmentPreparation`): one
/// `pwrite` of zeros (the file system builds the page cache for a whole stretch at once, in large
/// folios) and one `MADV_POPULATE_WRITE` to map it (``populate(_:)``). Faulting the fallocated,
/// never-written pages in instead (by a page fault each, or populating them directly) makes the
/// kernel zero-fill and set up each 4 KiB page on its own: ~1.0 µs of CPU per KiB appended against
/// ~0.2 with the stretch written first (measured on this VM, fio-like microbenchmark of both ways).
///
/// Memory stays bounded: `release(below:)` drops already-written pages from this process's
/// page tables (`MADV_DONTNEED`; on a shared file mapping the dirty state moves to the page
/// cache, nothing is lost). Segments are preallocated (`fallocate`) so a full disk shows up
/// as an error when a segment is created, never as SIGBUS on a page fault.
/// `write` and `release` are used only by the single writer (under the store's append lock);
/// `populate` by whoever prepares a stretch, never below the write position. `@unchecked
/// Sendable` because the CommitLog that holds it is shared.
final class SegmentWriteMapping: @unchecked Sendable {
    let file: StoreFile
    let size: Int
    let base: UnsafeMutableRawPointer
    private var released = 0
    private static let populateWrite: Int32 = 23  // MADV_POPULATE_WRITE, Linux 5.14+

    /// Maps all of `file` (`size` bytes).
    init(file: StoreFile, size: Int) throws(StoreError) {
        self.file = file
        self.size = size
        guard let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, file.fd, 0), p != MAP_FAILED else {
            throw .io(operation: "mmap", path: file.path, errno: errno)
        }
        // No readahead: a write fault on a never-written page would otherwise make the
        // kernel read (zero-fill) a large window ahead on every fault.
        madvise(p, size, MADV_RANDOM)
        base = p
    }

    deinit { munmap(base, size) }

    /// Copies `bytes` in at `offset`; the range must be prepared (`SegmentPreparation`).
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
        guard let src = bytes.baseAddress, bytes.count > 0 else { return }
        (base + offset).copyMemory(from: src, byteCount: bytes.count)
    }

    /// Maps the pages of `range`, just zeroed through the file, so the writer's `memcpy` does
    /// not fault on them. Advice only: a page left unmapped faults in later.
    func populate(_ range: Range<Int>) {
        _ = madvise(base + range.lowerBound, range.count, Self.populateWrite)
    }

    /// Unmaps the pages wholly below `offset` once more than `threshold` bytes accumulated.
    /// Often (1 MiB) because `fdatasync` must write-protect every page still mapped, one TLB
    /// shootdown each, which cost more than the appends themselves.
    func release(below offset: Int, threshold: Int = 1 << 20) {
        let end = offset / 4096 * 4096
        guard end - released >= threshold else { return }
        madvise(base + released, end - released, MADV_DONTNEED)
        released = end
    }
}
