import RocketMQAPI
import RocketRPC
import Synchronization

/// `grpc.health.v1.Health`: tells load balancers, orchestrators and `grpc_health_probe` whether
/// the server (service name `""`) and each named service is serving.
///
/// Statuses are set by the server's owner (`setStatus(_:for:)`); `Watch` streams every change.
/// Thread-safe: state sits behind a mutex and watchers are fed through `AsyncStream`s.
public final class HealthService: Grpc_Health_V1_Health.ServiceProtocol {
    public typealias Status = Grpc_Health_V1_HealthCheckResponse.ServingStatus

    private struct State {
        var statuses: [String: Status] = ["": .serving]
        var watchers: [String: [Int: AsyncStream<Status>.Continuation]] = [:]
        var nextWatcher = 0
    }

    private let state = Mutex(State())

    /// - Parameter services: service names to report as `SERVING` from the start, besides the overall `""`.
    public init(serving services: [String] = []) {
        state.withLock { state in
            for service in services { state.statuses[service] = .serving }
        }
    }

    /// Sets a service's status (`""` is the server as a whole) and tells its watchers.
    public func setStatus(_ status: Status, for service: String = "") {
        let continuations = state.withLock { state -> [AsyncStream<Status>.Continuation] in
            state.statuses[service] = status
            return Array(state.watchers[service, default: [:]].values)
        }
        for continuation in continuations { continuation.yield(status) }
    }

    /// Marks every known service `NOT_SERVING`, as a server does when it starts to shut down.
    public func enterShutdown() {
        let names = state.withLock { Array($0.statuses.keys) }
        for name in names { setStatus(.notServing, for: name) }
    }

    /// The current status of a service, or `nil` when it was never registered.
    public func status(of service: String) -> Status? {
        state.withLock { $0.statuses[service] }
    }

    public func check(request: Grpc_Health_V1_HealthCheckRequest, context: ServerContext) async throws -> Grpc_Health_V1_HealthCheckResponse {
        guard let status = status(of: request.service) else {
            throw RPCError(code: .notFound, message: "unknown service \"\(request.service)\"")
        }
        return Grpc_Health_V1_HealthCheckResponse(status: status)
    }

    public func list(request: Grpc_Health_V1_HealthListRequest, context: ServerContext) async throws -> Grpc_Health_V1_HealthListResponse {
        let statuses = state.withLock { $0.statuses }
        return Grpc_Health_V1_HealthListResponse(statuses: statuses.mapValues { Grpc_Health_V1_HealthCheckResponse(status: $0) })
    }

    /// Sends the current status at once (`SERVICE_UNKNOWN` for an unknown service), then each change,
    /// until the client goes away.
    public func watch(
        request: Grpc_Health_V1_HealthCheckRequest,
        response: ResponseWriter<Grpc_Health_V1_HealthCheckResponse>,
        context: ServerContext
    ) async throws {
        let service = request.service
        let (updates, continuation) = AsyncStream<Status>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let (id, current) = state.withLock { state -> (Int, Status) in
            let id = state.nextWatcher
            state.nextWatcher += 1
            state.watchers[service, default: [:]][id] = continuation
            return (id, state.statuses[service] ?? .serviceUnknown)
        }
        defer {
            _ = state.withLock { $0.watchers[service]?.removeValue(forKey: id) }
            continuation.finish()
        }
        continuation.yield(current)
        var last: Status?
        for await status in updates {
            if status == last { continue }
            last = status
            try await response.write(Grpc_Health_V1_HealthCheckResponse(status: status))
        }
    }
}
