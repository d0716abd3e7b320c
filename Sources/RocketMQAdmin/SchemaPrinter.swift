/// Prints services, messages and enums as `.proto` source, the way grpcurl's `describe` shows them
/// (`rpc Name ( .pkg.Req ) returns ( stream .pkg.Resp );`, fully qualified type names with a dot).
public struct SchemaPrinter: Sendable {
    /// Where types are looked up.
    public let pool: DescriptorPool

    /// A printer for the types in `pool`.
    public init(pool: DescriptorPool) { self.pool = pool }

    /// grpcurl's `describe SYMBOL` output: `"<name> is a service:"` and the declaration.
    /// - Throws: ``AdminError/unknownSymbol(_:)``.
    public func describe(_ symbol: String) throws(AdminError) -> String {
        let name = DescriptorPool.trim(symbol)
        if let service = pool.service(named: name) {
            return "\(name) is a service:\n" + self.service(service)
        }
        if let message = pool.message(named: name) {
            return "\(name) is a message:\n" + self.message(message, indent: "")
        }
        if let enumType = pool.enumType(named: name) {
            return "\(name) is an enum:\n" + self.enumeration(enumType, indent: "")
        }
        if let (service, method) = try? DescriptorPool.splitMethod(name), let found = pool.service(named: service)?.method(named: method) {
            return "\(found.fullName) is a method:\n" + rpc(found)
        }
        // A field: message name + "." + field name.
        if let dot = name.lastIndex(of: "."), let message = pool.message(named: String(name[..<dot])),
            let field = message.field(named: String(name[name.index(after: dot)...]))
        {
            return "\(name) is a field:\n" + fieldLine(field, in: message)
        }
        throw .unknownSymbol(symbol)
    }

    /// `service Name { rpc …; }`.
    public func service(_ service: ServiceDescriptor) -> String {
        var lines = ["service \(service.name) {"]
        for method in service.methods { lines.append("  " + rpc(method)) }
        lines.append("}")
        return lines.joined(separator: "\n")
    }

    /// One `rpc` line, as grpcurl prints a method.
    public func rpc(_ method: ServiceDescriptor.Method) -> String {
        "rpc \(method.name) ( \(method.clientStreaming ? "stream " : "").\(method.inputType) ) returns ( \(method.serverStreaming ? "stream " : "").\(method.outputType) );"
    }

    /// `message Name { … }` with nested types, oneofs and maps, each line prefixed by `indent`.
    public func message(_ message: MessageDescriptor, indent: String) -> String {
        var lines = ["\(indent)message \(message.name) {"]
        let inner = indent + "  "
        // Nested declarations (map entries are implied by their fields).
        let prefix = message.fullName + "."
        for nested in pool.messages.values.sorted(by: { $0.fullName < $1.fullName })
        where nested.fullName.hasPrefix(prefix) && !nested.fullName.dropFirst(prefix.count).contains(".") && !nested.isMapEntry {
            lines.append(self.message(nested, indent: inner))
        }
        for nested in pool.enums.values.sorted(by: { $0.fullName < $1.fullName })
        where nested.fullName.hasPrefix(prefix) && !nested.fullName.dropFirst(prefix.count).contains(".") {
            lines.append(enumeration(nested, indent: inner))
        }
        var printedOneofs = Set<Int>()
        for field in message.fields {
            if let oneof = field.oneofIndex {
                guard printedOneofs.insert(oneof).inserted else { continue }
                lines.append("\(inner)oneof \(message.oneofs[oneof]) {")
                for member in message.fields where member.oneofIndex == oneof {
                    lines.append(inner + "  " + fieldLine(member, in: message))
                }
                lines.append("\(inner)}")
            } else {
                lines.append(inner + fieldLine(field, in: message))
            }
        }
        lines.append("\(indent)}")
        return lines.joined(separator: "\n")
    }

    /// `enum Name { VALUE = n; }`.
    public func enumeration(_ enumType: EnumDescriptor, indent: String) -> String {
        var lines = ["\(indent)enum \(enumType.name) {"]
        for value in enumType.values { lines.append("\(indent)  \(value.name) = \(value.number);") }
        lines.append("\(indent)}")
        return lines.joined(separator: "\n")
    }

    func fieldLine(_ field: FieldDescriptor, in message: MessageDescriptor) -> String {
        if let entry = field.mapEntry {
            return "map<\(typeText(entry.key.field)), \(typeText(entry.value.field))> \(field.name) = \(field.number);"
        }
        var label = ""
        if field.isRepeated {
            label = "repeated "
        } else if field.isProto3Optional || (message.syntax == "proto2" && field.oneofIndex == nil) {
            label = "optional "
        }
        return "\(label)\(typeText(field)) \(field.name) = \(field.number);"
    }

    func typeText(_ field: FieldDescriptor) -> String {
        field.kind.protoName ?? ("." + (field.typeName ?? "?"))
    }
}
