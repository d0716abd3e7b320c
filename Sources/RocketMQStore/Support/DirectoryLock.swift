#if canImport(Glibc)
import Glibc
#endif

/// `<data>/lock`: an exclusive `flock` that keeps one store per data directory. The
/// holder's pid is written inside so the error can name it. The kernel drops the lock when
/// the process dies, so a crash never leaves a stale lock.
final class DirectoryLock: Sendable {
    let path: String
    private let fd: Int32

    init(path: String) throws(StoreError) {
        self.path = path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .io(operation: "open", path: path, errno: errno) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            var buffer = [UInt8](repeating: 0, count: 32)
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 32, 0) }
            close(fd)
            let text = n > 0 ? String(decoding: buffer.prefix(n), as: UTF8.self) : ""
            throw .lockHeld(path: path, pid: Int32(text.trimmingSpaces))
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        self.fd = fd
    }

    /// Releases the lock (also released when the process exits).
    func release() {
        flock(fd, LOCK_UN)
        close(fd)
    }
}

extension String {
    var trimmingSpaces: String {
        String(self.drop(while: { $0 == " " || $0 == "\n" }).reversed().drop(while: { $0 == " " || $0 == "\n" || $0 == "\0" }).reversed())
    }
}
