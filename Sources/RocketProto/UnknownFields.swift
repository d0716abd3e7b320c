/// Fields a decoder did not recognise, kept so that re-encoding loses nothing.
///
/// protobuf-c collects them while unpacking; generated messages carry them in
/// `unknownFields` and hand them back when packing.
public struct UnknownFields: Sendable, Hashable {
    /// One unrecognised field as it appeared on the wire.
    public struct Field: Sendable, Hashable {
        /// The field number.
        public var number: UInt32
        /// The protobuf wire type (0 varint, 1 64-bit, 2 length-delimited, 5 32-bit).
        public var wireType: UInt8
        /// The field's bytes after its tag, exactly as protobuf-c kept them (for wire type 2 this
        /// includes the length prefix); opaque, meant to be handed back for re-encoding.
        public var data: [UInt8]

        public init(number: UInt32, wireType: UInt8, data: [UInt8]) {
            self.number = number
            self.wireType = wireType
            self.data = data
        }
    }

    /// The fields in the order they were read.
    public var fields: [Field]

    public init(fields: [Field] = []) {
        self.fields = fields
    }

    public var isEmpty: Bool { fields.isEmpty }
}
