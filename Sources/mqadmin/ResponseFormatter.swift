import RocketMQAdmin
import RocketRPC

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

    /// grpcurl's report of a non-OK status: code, message, and the rich status's details if any.
    func report(_ status: RPCError) async -> String {
        var text = ExitStatus.statusReport(status)
        guard let details = try? RichStatus.details(of: status, pool: source.pool), !details.isEmpty else { return text }
        text += "  Details:\n"
        for (index, detail) in details.enumerated() {
            let prefix = "  \(index + 1))"
            let continuation = String(repeating: " ", count: prefix.count) + "\t"
            do {
                let lines = try await json(detail).split(separator: "\n", omittingEmptySubsequences: false)
                for (number, line) in lines.enumerated() {
                    text += (number == 0 ? prefix + "\t" : continuation) + line + "\n"
                }
            } catch {
                text += prefix + "\tError parsing detail message: \(ExitStatus.describe(error))\n"
            }
        }
        return text
    }

    /// The response as JSON or text format.
    /// - Throws: ``AdminError`` when it cannot be formatted (an `Any` of a type nobody knows).
    func format(_ response: DynamicMessage) async throws -> String {
        if text { return TextFormat(pool: source.pool).string(from: response) }
        return try await json(response)
    }

    private func json(_ response: DynamicMessage) async throws -> String {
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
