import NIOCore
import Testing

@testable import RocketRPC

/// A server connection reuses its closed streams (and their queues) for new calls; nothing of the
/// previous call may show through.
@Suite("Reused server streams start clean", .serialized, .timeLimit(.minutes(1)))
struct StreamReuseTests {
    @Test func aResetInboundBufferForgetsThePartialMessageFailureAndLimitOfThePreviousStream() {
        let buffer = InboundMessageBuffer(maxMessageSize: 1024, compression: nil)
        // Half a message (the prefix announces 10 bytes), then the stream fails.
        #expect(buffer.receive(ByteBuffer(bytes: [0, 0, 0, 0, 10, 1, 2, 3])) == nil)
        buffer.fail(RPCError(code: .cancelled, message: "reset by the peer"))

        buffer.reset(maxMessageSize: 1024, compression: nil)
        #expect(buffer.receive(ByteBuffer(bytes: [0, 0, 0, 0, 2, 7, 8])) == nil)
        #expect(buffer.receiveEnd() == nil)
        #expect(buffer.takeAll().all == [ByteBuffer(bytes: [7, 8])])

        // The new stream's limit applies, not the old one's.
        buffer.reset(maxMessageSize: 1, compression: nil)
        #expect(buffer.receive(ByteBuffer(bytes: [0, 0, 0, 0, 2, 7, 8]))?.code == .resourceExhausted)
    }

    @Test func aResetOutboundQueueForgetsTheBytesTrailersAndEndOfThePreviousStream() {
        let queue = OutboundDataQueue()
        queue.append(ByteBuffer(bytes: [1, 2, 3]))
        _ = queue.drain(max: 1) { _ in }
        queue.trailers = .fields([("grpc-status", "13")])
        queue.isFinished = true
        queue.isDeferred = true

        queue.reset(failingWriterWith: RPCError(code: .cancelled, message: "the call is already over"))
        #expect(queue.queuedBytes == 0)
        #expect(queue.trailers == nil)
        #expect(!queue.isFinished && !queue.isDeferred)
        queue.append(ByteBuffer(bytes: [9]))
        var drained: [UInt8] = []
        #expect(queue.drain(max: 100) { drained += $0 } == 1)
        #expect(drained == [9])
    }

    @Test func aHandlerThatOutlivesItsCallCannotAnswerTheCallThatReusedItsStream() async throws {
        let h = try await TestHarness.start()
        let error = await #expect(throws: RPCError.self) {
            // 1 s: long enough for the handler to start on a busy machine; it then outlives the call.
            let _: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("outlive-call"), options: CallOptions(timeout: .seconds(1)))
        }
        #expect(error?.code == .deadlineExceeded)
        // This call gets the closed stream of the first one, and is still running when the first
        // handler returns its answer: each waits for the other's mark.
        let r: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("after-outlived"), options: CallOptions())
        #expect(h.recorder.count("get.outlived") == 1)
        #expect(r.message.text == "after-outlived")
        await h.stop()
    }

    @Test func callsOnOneConnectionAfterTrailersOnlyFailuresSeeOnlyTheirOwnHeadersAndMetadata() async throws {
        let h = try await TestHarness.start()
        for round in 0..<5 {
            let error = await #expect(throws: RPCError.self) {
                let _: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("fail:5:round \(round)"), options: CallOptions())
            }
            #expect(error?.code == .notFound)
            #expect(error?.message == "round \(round)")

            var metadata = Metadata()
            metadata.add("x-round", String(round))
            let echoed: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("metadata"), options: CallOptions(metadata: metadata))
            #expect(echoed.initialMetadata.first("x-round") == String(round))
            #expect(echoed.trailingMetadata.first("x-round") == String(round))
            #expect(echoed.trailingMetadata.first("x-fail") == nil)

            let plain: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("plain \(round)"), options: CallOptions())
            #expect(plain.message.text == "plain \(round)")
            #expect(plain.initialMetadata.first("x-round") == nil)
            #expect(plain.trailingMetadata.first("x-round") == nil)
        }
        await h.stop()
    }

    /// A connection lets a call share the previous call's metadata block when the fields are the
    /// same byte for byte; a call whose fields differ in a value, in length or in number gets its own.
    @Test func callsWithRepeatedOrChangedMetadataEachSeeTheirOwn() async throws {
        let h = try await TestHarness.start()
        for value in ["a", "a", "b", "bb", "bb", "a"] {
            var metadata = Metadata()
            metadata.add("x-round", value)
            if value == "bb" { metadata.add("x-extra", "1") }
            let echoed: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("metadata"), options: CallOptions(metadata: metadata))
            #expect(echoed.initialMetadata.first("x-round") == value)
            #expect(echoed.initialMetadata.first("x-extra") == (value == "bb" ? "1" : nil))
        }
        await h.stop()
    }

    @Test func emptyMessagesNobodyReadsHoldThePeersWindowBack() {
        final class RecordingWindow: InboundWindow {
            var returned = 0
            func returnToWindow(_ bytes: Int) { returned += bytes }
        }
        let window = RecordingWindow()
        let buffer = InboundMessageBuffer(maxMessageSize: 1024, compression: nil)
        buffer.window = window
        // 20 DATA chunks of 3,276 empty messages each (5 bytes apiece), none taken by a reader.
        let chunk = ByteBuffer(bytes: [UInt8](repeating: 0, count: 3_276 * 5))
        for _ in 0..<20 { #expect(buffer.receive(chunk) == nil) }
        // They count toward the low-water mark like bytes would: once ~4,096 wait, the window is
        // held (it used to be returned in full, so a peer could queue messages without bound).
        #expect(buffer.messageCount == 20 * 3_276)
        #expect(window.returned <= 2 * chunk.readableBytes, "returned \(window.returned) of \(20 * chunk.readableBytes) bytes")
        // Taking them returns the rest.
        _ = buffer.takeAll()
        #expect(window.returned == 20 * chunk.readableBytes)
        withExtendedLifetime(window) {}
    }

    @Test func messagesBeingAssembledCountAgainstTheConnectionUntilTheirCallEnds() {
        final class BudgetWindow: InboundWindow {
            var held = 0
            let limit: Int
            init(limit: Int) { self.limit = limit }
            func returnToWindow(_ bytes: Int) {}
            func holdAssembling(_ delta: Int) -> Bool {
                if delta > 0, held + delta > limit { return false }
                held += delta
                return true
            }
        }
        let window = BudgetWindow(limit: 100_000)
        func buffer() -> InboundMessageBuffer {
            let buffer = InboundMessageBuffer(maxMessageSize: 1 << 20, compression: nil)
            buffer.window = window
            return buffer
        }
        // A prefix declaring 1 MiB, and 60,000 bytes of it.
        let partial = ByteBuffer(bytes: [0, 0, 0x10, 0, 0] + [UInt8](repeating: 1, count: 60_000))
        let first = buffer(), second = buffer()
        #expect(first.receive(partial) == nil)
        #expect(window.held == 60_000)
        #expect(second.receive(partial)?.code == .resourceExhausted)
        #expect(window.held == 60_000, "the refused bytes were counted")
        // The first call ends: its bytes go back, and another call's fit again.
        first.fail(RPCError(code: .cancelled, message: "over"))
        #expect(window.held == 0)
        let third = buffer()
        #expect(third.receive(partial) == nil)
        // Completing the message releases it too.
        #expect(third.receive(ByteBuffer(bytes: [UInt8](repeating: 1, count: (1 << 20) - 60_000))) == nil)
        #expect(window.held == 0 && third.messageCount == 1)
        withExtendedLifetime(window) {}
    }

    @Test func aPrefixDeclaringALargeMessageGetsNoMemoryForWhatHasNotArrived() throws {
        var deframer = MessageDeframer(maxMessageSize: 64 << 20, compression: nil)
        try deframer.append(ByteBuffer(bytes: [0, 0x04, 0, 0, 0] + [UInt8](repeating: 1, count: 100))) { _ in Issue.record("no message yet") }
        #expect(deframer.bufferedBytes == 100)
        #expect(deframer.assemblyCapacity <= 64 * 1024, "\(deframer.assemblyCapacity) bytes reserved for 100 received")
        // It grows with what arrives, and the message still comes out whole.
        var messages: [ByteBuffer] = []
        try deframer.append(ByteBuffer(bytes: [UInt8](repeating: 2, count: (64 << 20) - 100))) { messages.append($0) }
        #expect(messages.map(\.readableBytes) == [64 << 20])
    }
}
