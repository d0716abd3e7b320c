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

    init(
        descriptor: MethodDescriptor,
        takesSingleRequest: Bool,
        run: nonisolated(nonsending) @escaping @Sendable (ServerContext) async throws -> [UInt8]?
    ) {
        self.descriptor = descriptor
        self.takesSingleRequest = takesSingleRequest
        self.run = run
    }
}
