import NIOCore

/// Receives what an ``NGHTTP2Session`` parses. Called synchronously from inside
/// ``NGHTTP2Session/receive(_:)`` and ``NGHTTP2Session/produceOutput(into:limit:)``, on the
/// connection's event loop; implementations must not re-enter `receive`.
///
/// A base class the two connection handlers override, not a protocol: the session reaches its
/// delegate through an `Unmanaged` reference (``NGHTTP2Session/withDelegate(_:)``), which a class
/// allows and an existential does not. Loading an `unowned(unsafe)` existential cost a
/// retain/release pair on each of the four or five callbacks of every call (~1% of a server's time).
/// The methods do nothing unless overridden.
class NGHTTP2SessionDelegate {
    /// A complete HEADERS block (request, response, or trailers). `endStream` is the frame's END_STREAM flag.
    /// The session reuses the block's storage for the next one: copy out what must outlive the call.
    func session(_ session: NGHTTP2Session, didReceiveHeaders headers: HeaderBlock, streamID: Int32, endStream: Bool) {}
    /// A DATA payload chunk (padding excluded). The caller must eventually ``NGHTTP2Session/consume(streamID:bytes:)`` it.
    /// With ``NGHTTP2Session/slicesReceivedData`` the chunk is a slice of the buffer being received,
    /// so keeping it keeps that whole buffer: copy what must outlive the read.
    func session(_ session: NGHTTP2Session, didReceiveData data: ByteBuffer, streamID: Int32) {}
    /// END_STREAM arrived on a DATA frame.
    func session(_ session: NGHTTP2Session, didReceiveEndStreamOnData streamID: Int32) {}
    /// The stream is closed (both directions or reset); `errorCode` is 0 for a clean close.
    func session(_ session: NGHTTP2Session, didCloseStream streamID: Int32, errorCode: UInt32) {}
    /// The peer sent GOAWAY.
    func session(_ session: NGHTTP2Session, didReceiveGoAway lastStreamID: Int32, errorCode: UInt32) {}
    /// The peer acknowledged one of our PINGs.
    func sessionDidReceivePingAck(_ session: NGHTTP2Session) {}
    /// The peer sent a PING (nghttp2 answers it automatically); for abuse policing.
    func sessionDidReceivePing(_ session: NGHTTP2Session) {}
}
