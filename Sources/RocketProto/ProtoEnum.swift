/// A protobuf enum as generated Swift sees it: named cases plus `UNRECOGNIZED(Int32)`.
///
/// proto3 enums are open: a value this build does not know survives decoding and is
/// re-encoded unchanged, so a newer peer's value is never silently rewritten.
public protocol ProtoEnum: RawRepresentable, Sendable, Hashable where RawValue == Int32 {
    /// The enum's first declared value, the proto3 default.
    init()
    /// Any wire value; unknown ones become `UNRECOGNIZED`.
    init(rawValue: Int32)
    /// The value's name as written in the `.proto`, or `nil` for an unrecognized value.
    var protoName: String? { get }
    /// The value for a name as written in the `.proto`.
    init?(protoName: String)
}
