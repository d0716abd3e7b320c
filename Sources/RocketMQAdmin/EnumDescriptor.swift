/// An enum type: its fully qualified name and values in declaration order.
public struct EnumDescriptor: Sendable, Hashable {
    /// One named value.
    public struct Value: Sendable, Hashable {
        /// The value's name in `.proto` source, also its JSON form.
        public var name: String
        /// The value's number on the wire.
        public var number: Int32
    }

    /// Fully qualified name, for example `grpc.testing.PayloadType`.
    public var fullName: String
    /// Values in declaration order.
    public var values: [Value]
    /// The `.proto` file that declares it.
    public var fileName: String

    /// The first value with this number (aliases share numbers).
    public func value(number: Int32) -> Value? { values.first { $0.number == number } }

    /// The value with this name.
    public func value(named name: String) -> Value? { values.first { $0.name == name } }

    /// The last component of the full name.
    public var name: String { fullName.split(separator: ".").last.map(String.init) ?? fullName }
}
