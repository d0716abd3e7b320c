import RocketRPC
import Synchronization

/// Sends the requests of a call made with ``DynamicInvoker/invoke(_:options:requests:onEvent:)``.
///
/// `write` suspends while the server's flow-control window is full, and throws once the call is over.
public struct DynamicRequestWriter: Sendable {
    let writer: RequestWriter<RawMessage>
    let requestType: MessageDescriptor
    let sent: Counter

    /// Counts the requests sent, across the producer and the invoker.
    final class Counter: Sendable {
        private let value = Mutex(0)
        func increment() { value.withLock { $0 += 1 } }
        var count: Int { value.withLock { $0 } }
    }

    init(writer: RequestWriter<RawMessage>, requestType: MessageDescriptor, sent: Counter) {
        self.writer = writer
        self.requestType = requestType
        self.sent = sent
    }

    /// Encodes and sends one request.
    /// - Throws: ``AdminError/invalidDescriptor(_:)`` for a message of another type; `RPCError` once
    ///   the call is over.
    public func write(_ request: DynamicMessage) async throws {
        guard request.descriptor.fullName == requestType.fullName else {
            throw AdminError.invalidDescriptor("the method takes \(requestType.fullName), not \(request.descriptor.fullName)")
        }
        try await writer.write(RawMessage(bytes: WireCodec.encode(request)))
        sent.increment()
    }
}
