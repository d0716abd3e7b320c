import Foundation
import NIOCore
import Testing

@testable import RocketRPC

/// The server hands a unary request to its handler as a slice of the buffer it was read into, and
/// copies only a request that is still waiting when the read is over.
@Suite("Requests sliced out of the read buffer", .serialized, .timeLimit(.minutes(1)))
struct ReadBufferSlicingTests {
    @Test func aWaitingMessageStopsSharingTheReadBufferAndKeepsItsBytes() {
        var read = ByteBufferAllocator().buffer(capacity: 64)
        read.writeBytes([0xFF, 0xFF, 0, 0, 0, 0, 3, 7, 8, 9, 0xFF])
        let buffer = InboundMessageBuffer(maxMessageSize: 1024, compression: nil)
        #expect(buffer.receive(read.getSlice(at: 2, length: 8)!) == nil)

        buffer.ownMessages(slicedFrom: read)
        let messages = buffer.takeAll().all
        #expect(messages == [ByteBuffer(bytes: [7, 8, 9])])
        #expect(!Self.lies(messages[0], in: read))
    }

    @Test func aMessageFromAnotherBufferIsLeftAsItIs() {
        let buffer = InboundMessageBuffer(maxMessageSize: 1024, compression: nil)
        let chunk = ByteBuffer(bytes: [0, 0, 0, 0, 1, 42])
        #expect(buffer.receive(chunk) == nil)
        buffer.ownMessages(slicedFrom: ByteBuffer(bytes: [1, 2, 3]))
        let messages = buffer.takeAll().all
        #expect(messages == [ByteBuffer(bytes: [42])])
        #expect(Self.lies(messages[0], in: chunk), "still the slice of its chunk: not copied")
    }

    /// Whether `slice`'s bytes are inside `buffer`'s readable bytes (shared storage).
    private static func lies(_ slice: ByteBuffer, in buffer: ByteBuffer) -> Bool {
        buffer.withUnsafeReadableBytes { outer in
            slice.withUnsafeReadableBytes { inner in
                guard let o = outer.baseAddress, let i = inner.baseAddress else { return false }
                return i >= o && i < o + outer.count
            }
        }
    }

    /// HEADERS and the request's DATA in one read, END_STREAM in a later one: the request waits
    /// across reads (and is copied out of the first read's buffer) before the handler starts.
    @Test func aUnaryRequestWhoseEndArrivesInALaterReadIsAnswered() async throws {
        let h = try await TestHarness.start()
        let port = h.port
        let framed = grpcFramed(TestMessage("across reads"))
        let frames = await offPool { () -> [(type: UInt8, flags: UInt8, stream: UInt32, payload: [UInt8])] in
            guard let c = try? RawConnection(port: port) else { return [] }
            let headers = grpcRequestHeaders(path: "/rocketrpc.test.Echo/Get")
            c.send(BadInputTests.preface + BadInputTests.emptySettings + http2Frame(type: 1, flags: 0x4, stream: 1, headers) + http2Frame(type: 0, flags: 0, stream: 1, framed))
            Thread.sleep(forTimeInterval: 0.1)
            c.send(http2Frame(type: 0, flags: 0x1, stream: 1, []))
            let reply = c.read { bytes in parseFrames(bytes).contains { $0.type == 1 && $0.stream == 1 && $0.flags & 0x1 != 0 } }
            return parseFrames(reply)
        }
        let data = frames.filter { $0.type == 0 && $0.stream == 1 }.flatMap(\.payload)
        #expect(data == framed)
        #expect(frames.contains { $0.type == 1 && $0.stream == 1 && $0.flags & 0x1 != 0 }, "the call ended with trailers")
        await h.stop()
    }
}
