import RocketProto

/// JSON for generated message types, for tools (the broker-admin verbs, the console) that call
/// typed stubs but print or accept JSON. The type's descriptor must be in the pool: build it from
/// the generated file's embedded descriptor, `DescriptorPool(embedded: [ProtoFiles.…])`.
extension JSONMapping {
    /// `message` in the proto3 JSON mapping.
    /// - Throws: ``AdminError/unknownSymbol(_:)`` when the pool lacks `M`'s descriptor.
    public func string<M: ProtoMessage>(fromGenerated message: M, indent: Int = 2) throws(AdminError) -> String {
        guard let type = pool.message(named: M.protoMessageName) else { throw .unknownSymbol(M.protoMessageName) }
        return try string(from: WireCodec.decode(message.serializedBytes(), as: type, pool: pool), indent: indent)
    }

    /// Parses JSON text into a generated message type.
    /// - Throws: ``AdminError`` for bad JSON or a type missing from the pool.
    public func generated<M: ProtoMessage>(_: M.Type, fromJSON text: String) throws(AdminError) -> M {
        guard let type = pool.message(named: M.protoMessageName) else { throw .unknownSymbol(M.protoMessageName) }
        let bytes = WireCodec.encode(try message(fromJSON: text, as: type))
        do {
            return try M(serializedBytes: bytes)
        } catch {
            throw .malformedWire(message: M.protoMessageName, reason: "\(error)")
        }
    }
}
