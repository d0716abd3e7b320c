import RocketMQAdmin

/// Formats responses for printing, fetching through reflection any type an `Any` names that the
/// pool does not have yet (grpcurl resolves `Any` the same way).
///
/// An actor because it owns the growing ``SchemaSource`` while responses arrive on the call's task.
actor ResponseFormatter {
    private var source: SchemaSource
    private let emitDefaults: Bool
    private let useProtoNames: Bool
    private let text: Bool

    init(source: SchemaSource, emitDefaults: Bool, useProtoNames: Bool, text: Bool) {
        self.source = source
        self.emitDefaults = emitDefaults
        self.useProtoNames = useProtoNames
        self.text = text
    }

    /// The response as JSON or text format.
    /// - Throws: ``AdminError`` when it cannot be formatted (an `Any` of a type nobody knows).
    func format(_ response: DynamicMessage) async throws -> String {
        if text { return TextFormat(pool: source.pool).string(from: response) }
        // Each round can reveal one more unknown type (an Any inside an Any); a few rounds suffice.
        for _ in 0..<16 {
            do {
                return try JSONMapping(pool: source.pool, emitDefaults: emitDefaults, useProtoNames: useProtoNames).string(from: response)
            } catch .unknownAnyType(let name) {
                var updated = source
                guard await updated.loadType(name) else { throw AdminError.unknownAnyType(name) }
                source = updated
            }
        }
        return try JSONMapping(pool: source.pool, emitDefaults: emitDefaults, useProtoNames: useProtoNames).string(from: response)
    }
}
