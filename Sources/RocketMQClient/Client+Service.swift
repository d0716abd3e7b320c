import ServiceLifecycle

// Clients are ServiceLifecycle services: put one in a `ServiceGroup` and it keeps working until
// the group shuts down gracefully (SIGTERM...), then drains what is in flight and closes —
// one-way and async sends are delivered, push consumers finish their cached messages.

extension Producer: Service {
    public func run() async throws {
        await waitForGracefulShutdown()
        await shutdown()
    }
}

extension SimpleConsumer: Service {
    public func run() async throws {
        await waitForGracefulShutdown()
        await shutdown()
    }
}

extension PushConsumer: Service {
    public func run() async throws {
        await waitForGracefulShutdown()
        await shutdown()
    }
}

extension PullConsumer: Service {
    public func run() async throws {
        await waitForGracefulShutdown()
        await shutdown()
    }
}

/// Returns when graceful shutdown begins, or when the task is cancelled.
private func waitForGracefulShutdown() async {
    // Throws on cancellation, which ends the wait just the same.
    try? await gracefulShutdown()
}
