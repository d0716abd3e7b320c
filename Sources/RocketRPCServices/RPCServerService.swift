import Logging
import RocketRPC
import ServiceLifecycle

/// Runs an `RPCServer` as a ServiceLifecycle `Service`: starts it, serves until graceful
/// shutdown (SIGTERM/SIGINT in the executables), then stops accepting, lets in-flight calls
/// finish within `gracePeriod` and closes.
public struct RPCServerService: Service {
    public let server: RPCServer
    public let gracePeriod: Duration
    /// Called once the server listens, with its bound port (to print it, register routes...).
    let onStarted: @Sendable (Int) async -> Void
    /// Called when graceful shutdown begins, before the server stops (health → NOT_SERVING...).
    let onShutdown: @Sendable () async -> Void

    public init(
        server: RPCServer, gracePeriod: Duration = .seconds(10),
        onStarted: @escaping @Sendable (Int) async -> Void = { _ in },
        onShutdown: @escaping @Sendable () async -> Void = {}
    ) {
        self.server = server
        self.gracePeriod = gracePeriod
        self.onStarted = onStarted
        self.onShutdown = onShutdown
    }

    public func run() async throws {
        try await server.start()
        await onStarted(server.localPort ?? server.configuration.port)
        // Cancellation (the group cancels when a sibling service fails, a metrics port already
        // taken, say) closes the server at once, so the process exits with that failure instead
        // of serving on without it.
        let server = self.server
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await server.run()
            } onGracefulShutdown: {
                Task {
                    await onShutdown()
                    await server.shutdown(gracePeriod: gracePeriod)
                }
            }
        } onCancel: {
            Task { await server.shutdown(gracePeriod: .zero) }
        }
    }
}
