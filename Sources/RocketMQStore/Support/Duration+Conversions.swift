import Foundation

// Conversions the store and the broker need where APIs take seconds or milliseconds
// (`Date`, `NSCondition`, `Thread.sleep`, the protocol's millisecond fields). `package`: one
// definition for every module of this package, none for its users.
extension Duration {
    /// The duration in seconds, as `Date` arithmetic takes it.
    package var timeInterval: TimeInterval { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
    /// Whole milliseconds, rounded toward zero.
    package var wholeMilliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}
