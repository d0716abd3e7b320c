import Foundation

/// A live broker as a ``RouteTable`` sees it: its registration and when it was last heard from.
public struct RegisteredBroker: Sendable, Equatable {
    /// What the broker registered (with the latest topic list from its heartbeats).
    public var registration: BrokerRegistration
    /// When the current registration was made (wall clock, for display).
    public var registeredAt: Date
    /// When the broker was last heard from (wall clock, for display).
    public var lastHeartbeat: Date
}
