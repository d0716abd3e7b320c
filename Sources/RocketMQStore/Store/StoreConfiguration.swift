/// When an append counts as done.
public enum FlushMode: String, Sendable, Codable {
    /// Answer once the record is in the page cache; a flusher syncs in the background.
    case async
    /// Answer once an `fdatasync` covering the record returned (group commit).
    case sync
}

/// Everything that tunes a `MessageStore`. Defaults match a production broker; tests
/// shrink the sizes.
public struct StoreConfiguration: Sendable {
    /// Root of the data directory (`commitlog/`, `consumequeue/`, `index/`, `config/`, `checkpoint`, `lock`).
    public var dataDirectory: String
    /// Size of each CommitLog segment file. Default 1 GiB.
    public var commitLogSegmentSize: Int64 = 1 << 30
    /// Entries (20 bytes each) per ConsumeQueue file. Default 300 000 (about 5.7 MiB).
    public var consumeQueueFileEntries: Int = 300_000
    /// Sync (group commit) or async flush. Default `.async`, as in RocketMQ.
    public var flushMode: FlushMode = .async
    /// Async flush: the flusher syncs at least this often. Default 500 ms.
    public var flushInterval: Duration = .milliseconds(500)
    /// Async flush: the flusher also syncs as soon as this many 4 KiB pages are dirty.
    /// Default 4096 (16 MiB): smaller values make the flusher `fdatasync` continuously under
    /// load and take CPU and disk time from appends.
    public var flushDirtyPages: Int = 4096
    /// CommitLog bytes kept in the page cache behind the flushed position: once flushed,
    /// older pages are dropped from the cache (`POSIX_FADV_DONTNEED`, drop-behind). Consumers
    /// read recent messages from the cache; one further behind reads from disk, as after a
    /// restart. It bounds the log's cache footprint and lets new pages reuse freed ones, which
    /// pays where a never-used page is expensive (a VM whose memory the host backs on first
    /// touch: the broker's CPU per send fell 20% past the window) and costs the drop itself
    /// elsewhere (the store's raw append benchmark lost ~10%). `nil` (this type's default):
    /// never dropped, the kernel decides, as RocketMQ does. `mqbroker` sets 1 GiB unless
    /// configured (`--page-cache-window`).
    public var pageCacheWindow: Int64?
    /// Sync flush: an append whose covering `fdatasync` has not returned by then fails with
    /// `StoreError.flushTimeout`. Default 5 s.
    public var groupCommitTimeout: Duration = .seconds(5)
    /// Sync flush: how many bytes of appended records may wait in memory for the flusher's
    /// write. Past it (a disk that does not keep up, or is stuck) appends fail with
    /// `StoreError.flushBacklog` before anything is stored, and the client may retry later,
    /// instead of the broker's memory growing without bound. Default 64 MiB.
    public var syncFlushBacklogLimit: Int = 64 << 20
    /// How often the checkpoint is rewritten (the CommitLog's flushed end, for recovery's
    /// check of the synced part). Default 1 s.
    public var checkpointInterval: Duration = .seconds(1)
    /// How often ConsumeQueue and IndexFile pages are synced, which moves the checkpoint's safe
    /// offset (at a checkpoint, so at least `checkpointInterval` apart; always at a clean
    /// shutdown). Default 10 s. Index keys hash to slots all over the
    /// file, so each sync write-protects thousands of scattered pages (a TLB shootdown each,
    /// interrupting the event loops on the other cores) and every send then faults them back
    /// in: with a sync each second the end-to-end p99 was 3.2–4.6 ms, without 1.8–2.9 ms.
    /// A process crash loses nothing either way (mapped writes stay in the page cache); after
    /// an OS crash recovery re-dispatches from the last index sync (the checkpoint's safe
    /// offset never passes it). RocketMQ syncs an IndexFile only when it is full.
    public var indexSyncInterval: Duration = .seconds(10)
    /// Segments whose last write is older than this are deleted by retention. Default 72 h.
    public var fileReservedTime: Duration = .seconds(72 * 3600)
    /// Hour of the day (0–23, UTC) when expired segments are deleted. Default 4.
    public var deleteWhenHour: Int = 4
    /// Disk use above which expired segments are deleted at once. Default 0.75.
    public var diskCleanRatio: Double = 0.75
    /// Disk use above which appends are refused (`StoreError.diskFull`). Default 0.90.
    public var diskHardLimitRatio: Double = 0.90
    /// How often retention and the disk ratio are checked. Default 10 s.
    public var retentionCheckInterval: Duration = .seconds(10)
    /// The lowest CommitLog offset some record is still needed at (nil: none), asked by a
    /// retention run that found an expired segment: that segment and every later one are kept
    /// past `fileReservedTime`, as long as they were last written within `maxRetentionHold` and
    /// the disk is below `diskHardLimitRatio`. The broker answers for its delay messages not due
    /// yet and its open transactions, read back from their records later. The answer may only
    /// grow over time. Called on the store's background thread, with no store lock held.
    public var recordsStillNeeded: (@Sendable (MessageStore) -> Int64?)?
    /// How long after its last write a segment is kept at most for `recordsStillNeeded`: past it
    /// (or on a full disk) retention deletes it anyway and logs an error. Default 4 days: the
    /// longest delay (3 days), and a day for a delivery held up.
    public var maxRetentionHold: Duration = .seconds(4 * 86_400)
    /// Hash slots per IndexFile. Default 5 000 000.
    public var indexSlots: Int = 5_000_000
    /// Entries per IndexFile; a new file is started when full. Default 20 000 000.
    public var indexEntries: Int = 20_000_000
    /// Lets recovery cut the CommitLog at a damaged record that lies below the end the last
    /// checkpoint recorded as synced, dropping every record after it (acknowledged ones). Off by
    /// default: such a store refuses to open and says which segment and offset are damaged, so
    /// that an operator can restore the file first. Default false.
    public var forceRecovery = false
    /// Largest encoded record accepted. Default 4 MiB.
    public var maxMessageSize: Int = 4 << 20
    /// `host:port` written as the store host of every record (and into message ids).
    public var storeHost: String = "127.0.0.1:10911"

    /// Measures disk use of the data directory's file system (a hook so tests can fake a full disk).
    var diskUsage: @Sendable (String) -> Double = { FileSystem.usedRatio(of: $0) }
    /// Tests: runs inside every append once its record is written and dispatched (ConsumeQueue
    /// entry, index keys) and before it is published, with the append lock held.
    var afterDispatchForTesting: (@Sendable (MessageStore) -> Void)?

    /// A configuration with production defaults rooted at `dataDirectory`.
    public init(dataDirectory: String) {
        self.dataDirectory = dataDirectory
    }
}
