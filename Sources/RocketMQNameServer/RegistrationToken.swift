/// Proof of one registration in a ``RouteTable``: heartbeats and unregistering go through it, so a
/// stream that ends late cannot remove the registration a newer stream of the same broker made.
public struct RegistrationToken: Sendable, Hashable, CustomStringConvertible {
    /// The registered broker.
    public let key: BrokerKey
    let serial: UInt64

    public var description: String { "\(key)#\(serial)" }
}
