import NIOCore

/// One nghttp2 session (one HTTP/2 connection), wrapped so callers never see a C pointer.
///
/// Confined to the connection's event loop: every method must be called there. Owns the
/// `nghttp2_session *` (freed in `deinit`); nghttp2's callbacks reach this object through an unretained
/// `user_data` pointer, valid because the C session never outlives `self`. All pointer work lives in
/// `NGHTTP2Session+CInterop.swift`.
final class NGHTTP2Session {
    let role: HTTP2Role
    weak var delegate: (any NGHTTP2SessionDelegate)?
    /// The C session; `nil` only if nghttp2 failed to allocate.
    var raw: OpaquePointer?
    var outbound: [Int32: OutboundDataQueue] = [:]
    /// The HEADERS block being received. HTTP/2 forbids interleaving header blocks, so there is at
    /// most one: its stream (0 when none or rejected), fields and size so far.
    var headerBlockStream: Int32 = 0
    var headerBlock: [(name: String, value: String)] = []
    var headerBlockBytes = 0
    /// Scratch space reused by every header submission (see `withHeaderFields`).
    var headerScratch: [UInt8] = []
    var headerOffsets: [(Int, Int, Int, Int)] = []
    let maxHeaderListSize: Int
    let allocator: ByteBufferAllocator

    init(role: HTTP2Role, settings: HTTP2LocalSettings, allocator: ByteBufferAllocator) {
        self.role = role
        self.maxHeaderListSize = Int(settings.maxHeaderListSize)
        self.allocator = allocator
        self.createRawSession(settings: settings)
    }

    deinit {
        destroyRawSession()
    }

    /// Registers the outbound queue of a stream whose data provider is (or will be) this session's.
    func registerOutbound(_ queue: OutboundDataQueue, streamID: Int32) {
        outbound[streamID] = queue
    }
}
