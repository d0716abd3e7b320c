/// A gRPC service implementation: a name and the methods it registers.
///
/// Generated service protocols refine this; hand-written services (health, reflection) implement it directly.
public protocol RPCService: Sendable {
    /// Fully qualified service name, for example `grpc.health.v1.Health`.
    var serviceName: String { get }
    /// Adds this service's methods to `router`.
    func register(into router: inout RPCRouter)
}
