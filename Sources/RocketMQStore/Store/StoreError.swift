#if canImport(Glibc)
import Glibc
#endif

/// Every failure the store reports, with the context a caller (the broker) needs to
/// answer its client or an operator.
public enum StoreError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Another process (or another `MessageStore` in this one) holds `<data>/lock`.
    case lockHeld(path: String, pid: Int32?)
    /// Disk use passed `StoreConfiguration.diskHardLimitRatio`; appends are refused, reads still work.
    case diskFull(usedRatio: Double)
    /// A sync-flush append was written but no `fdatasync` covered it within the group-commit
    /// timeout. The record may or may not survive a machine crash: this is never a success.
    case flushTimeout(physicalOffset: Int64)
    /// Sync flush: `bytes` of appended records already wait for the disk
    /// (`StoreConfiguration.syncFlushBacklogLimit`); nothing was stored, retry later.
    case flushBacklog(bytes: Int)
    /// The record at `physicalOffset` failed its size, magic or CRC32C checks.
    case corruptRecord(physicalOffset: Int64, reason: String)
    /// The message (encoded) is larger than `StoreConfiguration.maxMessageSize`.
    case messageTooLarge(size: Int, limit: Int)
    /// A field does not fit the record format (topic too long, too many properties...).
    case invalidMessage(String)
    /// Nothing is stored at this physical offset (before the first segment or past the end).
    case offsetOutOfRange(physicalOffset: Int64)
    /// A system call failed.
    case io(operation: String, path: String, errno: Int32)
    /// The store was shut down.
    case shutDown
    /// A file in the data directory could not be understood.
    case badFile(path: String, reason: String)
    /// The store is a replica: its log grows only by records copied from its master.
    case replica
    /// Replicated records do not continue this log where it ends (see `appendReplicated`).
    case replicaDiverged(String)

    /// A failed system call that allocates disk space for `path` (`fallocate`, `pwrite`): no
    /// space left (or quota) is a full disk, whatever the configured ratio says; anything else
    /// an I/O error.
    static func spaceFailure(_ operation: String, path: String, errno code: Int32) -> StoreError {
        code == ENOSPC || code == EDQUOT
            ? .diskFull(usedRatio: FileSystem.usedRatio(of: path)) : .io(operation: operation, path: path, errno: code)
    }

    public var description: String {
        switch self {
        case .lockHeld(let path, let pid):
            return "data directory lock \(path) is held by another process" + (pid.map { " (pid \($0))" } ?? "")
        case .diskFull(let ratio):
            return "disk is \(Int(ratio * 100))% full: appends refused until retention frees space"
        case .flushTimeout(let offset):
            return "flush to disk timed out for the record at physical offset \(offset)"
        case .flushBacklog(let bytes):
            return "\(bytes) bytes already wait for the disk: the append was refused, retry later"
        case .corruptRecord(let offset, let reason):
            return "corrupt CommitLog record at physical offset \(offset): \(reason)"
        case .messageTooLarge(let size, let limit):
            return "message of \(size) bytes exceeds the \(limit)-byte limit"
        case .invalidMessage(let reason):
            return "invalid message: \(reason)"
        case .offsetOutOfRange(let offset):
            return "no record at physical offset \(offset)"
        case .io(let operation, let path, let code):
            return "\(operation) \(path) failed: errno \(code)"
        case .shutDown:
            return "the message store is shut down"
        case .badFile(let path, let reason):
            return "cannot use \(path): \(reason)"
        case .replica:
            return "this store is a replica of its master's log: it takes no appends of its own"
        case .replicaDiverged(let why):
            return "the replica's log does not continue the master's: \(why)"
        }
    }
}

extension StoreError {
    /// Runs `body`, which goes through a `rethrows` API that erases typed throws (such as
    /// `Array.withUnsafeBytes`), and gets the `StoreError` back.
    static func catching<T>(_ body: () throws -> T) throws(StoreError) -> T {
        do {
            return try body()
        } catch let error as StoreError {
            throw error
        } catch {
            throw .badFile(path: "", reason: "unexpected error \(error)")
        }
    }
}
