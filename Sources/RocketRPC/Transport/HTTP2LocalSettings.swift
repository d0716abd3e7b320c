/// Settings this end advertises, plus limits enforced locally.
struct HTTP2LocalSettings {
    var maxConcurrentStreams: UInt32
    var initialStreamWindow: UInt32
    var connectionWindow: Int32
    var maxHeaderListSize: UInt32
    var maxFrameSize: UInt32 = 16_384
}
