import NIOCore

extension EventLoopFuture where Value: Sendable {
    /// Awaits the future as a call step: errors become ``RPCError`` and Swift task cancellation runs
    /// `onCancel` (which hops to the event loop and fails the call) and surfaces as `CANCELLED`.
    func rpcValue(onCancel: @escaping @Sendable () -> Void) async throws(RPCError) -> Value {
        do {
            return try await withTaskCancellationHandler {
                try await self.get()
            } onCancel: {
                onCancel()
            }
        } catch let error as RPCError {
            throw error
        } catch is CancellationError {
            throw RPCError(code: .cancelled, message: "the call was cancelled")
        } catch {
            throw RPCError(code: .unavailable, message: "\(error)")
        }
    }
}
