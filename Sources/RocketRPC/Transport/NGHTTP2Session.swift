import NIOCore

/// One nghttp2 session (one HTTP/2 connection), wrapped so callers never see a C pointer.
///
/// Confined to the connection's event loop: every method must be called there. Owns the
/// `nghttp2_session *` (freed in `deinit`); nghttp2's callbacks reach this object through an unretained
/// `user_data` pointer, valid because the C session never outlives `self`. All pointer work lives in
/// `NGHTTP2Session+CInterop.swift`.
///
/// Stored properties are `@exclusivity(unchecked)`: the object is confined to one event loop and
/// never re-entered while one of its properties is being mutated, so the runtime's dynamic
/// exclusivity checks (measurable on the per-request path) are skipped.
final class NGHTTP2Session {
    let role: HTTP2Role
    /// The connection handler that owns this session (and so always outlives it), unretained: no
    /// weak-reference load and no retain on the nghttp2 callbacks (see ``withDelegate(_:)``).
    @exclusivity(unchecked) private var delegateReference: Unmanaged<NGHTTP2SessionDelegate>?
    /// The C session; `nil` only if nghttp2 failed to allocate.
    @exclusivity(unchecked) var raw: OpaquePointer?
    @exclusivity(unchecked) var outbound = StreamTable<OutboundDataQueue>()
    /// The HEADERS block being received. HTTP/2 forbids interleaving header blocks, so there is at
    /// most one: its stream (0 when none or rejected) and its fields so far, in storage reused by
    /// every block of the connection.
    @exclusivity(unchecked) var headerBlockStream: Int32 = 0
    @exclusivity(unchecked) var headerBlock = HeaderBlock()
    /// Scratch space reused by every header submission (see `withHeaderFields`).
    @exclusivity(unchecked) var headerScratch = HeaderBlock()
    let maxHeaderListSize: Int
    let allocator: ByteBufferAllocator
    /// DATA chunks are handed to the delegate as slices of the buffer being received instead of
    /// copies (see ``NGHTTP2SessionDelegate/session(_:didReceiveData:streamID:)``).
    @exclusivity(unchecked) var slicesReceivedData = false
    /// During ``receive(_:)`` with `slicesReceivedData`: the buffer nghttp2 is parsing and the
    /// address of its first readable byte, which DATA chunk pointers are measured from.
    @exclusivity(unchecked) var receiving: (buffer: ByteBuffer, base: UnsafeRawPointer)?

    /// Makes `delegate` (the connection handler that owns this session) the receiver of what
    /// the session parses.
    func attach(_ delegate: NGHTTP2SessionDelegate) {
        delegateReference = Unmanaged.passUnretained(delegate)
    }

    /// Runs `body` with the delegate, if there is one, without retaining it: the delegate owns
    /// this session, so it is alive whenever nghttp2 calls back (only from inside our own calls).
    /// - Returns: whether there was a delegate.
    @inline(__always) @discardableResult
    func withDelegate(_ body: (NGHTTP2SessionDelegate) -> Void) -> Bool {
        guard let delegateReference else { return false }
        delegateReference._withUnsafeGuaranteedRef(body)
        return true
    }
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
