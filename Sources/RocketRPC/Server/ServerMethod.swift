import NIOCore

/// One registered method, type-erased. `run` returns the single response of unary and
/// client-streaming methods (sent together with the OK status), `nil` for streaming responses.
///
/// For methods that take a single request (`takesSingleRequest`), the runtime starts the handler
/// only once the whole request has arrived and hands it over through ``ServerContext/singleMessage()``;
/// a stream that fails before that never starts a task.
///
/// An immutable class: every call passes it along (router, ``ServerContext``), and a
/// reference costs one retain where the struct's strings and closure cost four.
final class ServerMethod: Sendable {
    let descriptor: MethodDescriptor
    let takesSingleRequest: Bool
    /// `nonisolated(nonsending)`: runs on the caller's executor (the handler task's), so calling it
    /// costs no executor switch.
    let run: nonisolated(nonsending) @Sendable (ServerContext) async throws -> [UInt8]?
    /// For unary methods registered with an immediate handler (``RPCRouter/unary(_:immediate:)``):
    /// runs it on the event loop, inside the read that completed the request, with no `Task`
    /// unless the handler asks for one (``ImmediateAnswer/later(_:)``).
    let answerNow: (@Sendable (ServerContext, ByteBuffer) throws -> ErasedAnswer)?

    init(
        descriptor: MethodDescriptor,
        takesSingleRequest: Bool,
        run: nonisolated(nonsending) @escaping @Sendable (ServerContext) async throws -> [UInt8]?,
        answerNow: (@Sendable (ServerContext, ByteBuffer) throws -> ErasedAnswer)? = nil
    ) {
        self.descriptor = descriptor
        self.takesSingleRequest = takesSingleRequest
        self.run = run
        self.answerNow = answerNow
    }
}

/// ``ImmediateAnswer`` with the response encoded.
@usableFromInline
enum ErasedAnswer: Sendable {
    case now([UInt8])
    case later(@Sendable () async throws -> [UInt8])
    case callback(@Sendable (_ done: @escaping @Sendable (Result<[UInt8], any Error>) -> Void) -> Void)

    /// The response, running the deferred work (or awaiting the callback) if there is any.
    @usableFromInline
    func response() async throws -> [UInt8] {
        switch self {
        case .now(let response): return response
        case .later(let work): return try await work()
        case .callback(let start):
            return try await withCheckedThrowingContinuation { continuation in start { continuation.resume(with: $0) } }
        }
    }
}

/// What an immediate unary handler (``RPCRouter/unary(_:immediate:)``) answers with.
public enum ImmediateAnswer<Response: Sendable>: Sendable {
    /// The response, sent at once: the call needed no `Task`.
    case now(Response)
    /// The rest of the work, which may suspend: run in a `Task` like any handler's.
    case later(@Sendable () async throws -> Response)
    /// The answer comes later through a callback, with no `Task`: `start` runs at once and
    /// must call `done` exactly once, on any thread (the response is encoded there, then sent
    /// from the connection's event loop). For work that completes by callback anyway, such as
    /// waiting for a disk sync that a dedicated thread reports. Unlike `.later`, nothing is
    /// cancelled when the call ends early (a reset or a deadline): `done` then finds the call
    /// over and its answer is dropped. With `runHandlersOnEventLoop` off, the call's task
    /// awaits `done` (calling it twice there is a crash, as resuming a continuation twice is).
    case callback(@Sendable (_ done: @escaping @Sendable (Result<Response, any Error>) -> Void) -> Void)
}
