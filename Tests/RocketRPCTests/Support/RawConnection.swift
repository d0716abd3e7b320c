import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A blocking TCP client for feeding a server bytes no well-behaved client would send.
/// Every read is bounded by a receive timeout; use it off the cooperative pool (``offPool(_:)``).
/// `@unchecked Sendable`: a test hands it between its task and one helper thread, never concurrently.
final class RawConnection: @unchecked Sendable {
    private let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            close(fd)
            throw POSIXError(.ECONNREFUSED)
        }
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Reads until `done` holds for the bytes so far, the peer closes, or `timeout` passes.
    func read(timeout: Duration = .seconds(3), until done: ([UInt8]) -> Bool) -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline && !done(out) {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { break }
            if n < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { continue }
                break
            }
            out.append(contentsOf: buffer[0..<n])
        }
        return out
    }

    /// Reads until the peer closes or `timeout` passes. - Returns: the bytes and whether the peer closed.
    func readUntilClosed(timeout: Duration = .seconds(3)) -> (bytes: [UInt8], closed: Bool) {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return (out, true) }
            if n < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { continue }
                return (out, true)  // ECONNRESET counts as closed
            }
            out.append(contentsOf: buffer[0..<n])
        }
        return (out, false)
    }
}

/// Runs blocking work on a fresh thread so it does not starve Swift's cooperative pool.
func offPool<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: work()) }.start()
    }
}

/// One HTTP/2 frame.
func http2Frame(type: UInt8, flags: UInt8, stream: UInt32, _ payload: [UInt8]) -> [UInt8] {
    let length = UInt32(payload.count)
    var bytes: [UInt8] = [UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), type, flags]
    bytes += withUnsafeBytes(of: stream.bigEndian, Array.init)
    return bytes + payload
}

/// HPACK "literal header field without indexing, new name", no Huffman (names and values < 127 bytes).
func hpackLiteralFields(_ fields: [(String, String)]) -> [UInt8] {
    var bytes: [UInt8] = []
    for (name, value) in fields {
        bytes += [0, UInt8(name.utf8.count)]
        bytes += Array(name.utf8)
        bytes.append(UInt8(value.utf8.count))
        bytes += Array(value.utf8)
    }
    return bytes
}

/// The HEADERS block of a gRPC request for `path` (HPACK literals), as raw-frame tests send it.
func grpcRequestHeaders(path: String) -> [UInt8] {
    hpackLiteralFields([
        (":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "localhost"),
        ("content-type", "application/grpc"), ("te", "trailers"),
    ])
}

/// `message` serialized and gRPC-framed (uncompressed, 5-byte length prefix).
func grpcFramed(_ message: TestMessage) -> [UInt8] {
    let bytes = message.serializedBytes()
    return [0] + withUnsafeBytes(of: UInt32(bytes.count).bigEndian, Array<UInt8>.init) + bytes
}

/// HTTP/2 frames in `bytes` as (type, flags, streamID, payload); stops at a partial frame.
func parseFrames(_ bytes: [UInt8]) -> [(type: UInt8, flags: UInt8, stream: UInt32, payload: [UInt8])] {
    var frames: [(type: UInt8, flags: UInt8, stream: UInt32, payload: [UInt8])] = []
    var i = 0
    while i + 9 <= bytes.count {
        let length = Int(bytes[i]) << 16 | Int(bytes[i + 1]) << 8 | Int(bytes[i + 2])
        let stream = (UInt32(bytes[i + 5]) << 24 | UInt32(bytes[i + 6]) << 16 | UInt32(bytes[i + 7]) << 8 | UInt32(bytes[i + 8])) & 0x7FFF_FFFF
        guard i + 9 + length <= bytes.count else { break }
        frames.append((bytes[i + 3], bytes[i + 4], stream, Array(bytes[(i + 9)..<(i + 9 + length)])))
        i += 9 + length
    }
    return frames
}

/// Runs `nghttp` (from nghttp2-client) and returns its verbose output; `nil` if it is not installed.
func runNghttp(_ arguments: [String]) async -> String? {
    guard FileManager.default.isExecutableFile(atPath: "/usr/bin/nghttp") else { return nil }
    return await offPool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/nghttp")
        process.arguments = ["-v", "-t", "10"] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do { try process.run() } catch { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }
}

/// Writes `bytes` to a fresh temporary file and returns its path.
func temporaryFile(_ bytes: [UInt8]) throws -> String {
    let path = NSTemporaryDirectory() + "rocketrpc-\(UUID().uuidString)"
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return path
}
