import RocketMQAPI
import RocketProto

/// Every message, enum and service type of a set of `.proto` files, indexed by fully qualified name.
///
/// Built from `FileDescriptorProto`s: the ones server reflection returns, the ones `protoc`
/// writes (``ProtoSourceCompiler``), or the ones generated code embeds (`ProtoFiles`). Value type,
/// `Sendable`; adding files re-resolves the whole pool, which is cheap for the few dozen files a
/// tool works with. The well-known types (`google/protobuf/{any,duration,timestamp,struct,wrappers,
/// field_mask,empty}.proto`) and `google.rpc.Status` are always present, so JSON mapping of `Any` and friends works even when
/// a server's reflection leaves them out.
public struct DescriptorPool: Sendable {
    /// The files, by name, in the order they were added.
    public private(set) var files: [Google_Protobuf_FileDescriptorProto] = []
    /// Message types by fully qualified name (nested types as `pkg.Outer.Inner`, map entries included).
    public private(set) var messages: [String: MessageDescriptor] = [:]
    /// Enum types by fully qualified name.
    public private(set) var enums: [String: EnumDescriptor] = [:]
    /// Services by fully qualified name.
    public private(set) var services: [String: ServiceDescriptor] = [:]

    /// A pool holding only the well-known types.
    public init() {
        // The embedded descriptors were produced by protoc at build time; they always decode.
        let wellKnown = [
            ProtoFiles.google_protobuf_any_proto, ProtoFiles.google_protobuf_duration_proto,
            ProtoFiles.google_protobuf_timestamp_proto, ProtoFiles.google_protobuf_struct_proto,
            ProtoFiles.google_protobuf_wrappers_proto, ProtoFiles.google_protobuf_field_mask_proto,
            ProtoFiles.google_protobuf_empty_proto,
        ]
        let protos = wellKnown.compactMap { try? Google_Protobuf_FileDescriptorProto(serializedBytes: $0.serialized) }
        try? add(protos + [RichStatus.file])
    }

    /// A pool with the well-known types and `files`.
    /// - Throws: ``AdminError/invalidDescriptor(_:)`` when a field names a type no file declares.
    public init(files: [Google_Protobuf_FileDescriptorProto]) throws(AdminError) {
        self.init()
        try add(files)
    }

    /// A pool with the well-known types and embedded descriptors (with their imports).
    public init(embedded: [ProtoFileDescriptor]) throws(AdminError) {
        var protos: [Google_Protobuf_FileDescriptorProto] = []
        for file in embedded.flatMap(\.transitiveClosure) {
            do {
                protos.append(try Google_Protobuf_FileDescriptorProto(serializedBytes: file.serialized))
            } catch {
                throw .invalidDescriptor("embedded descriptor \(file.name) does not decode: \(error)")
            }
        }
        try self.init(files: protos)
    }

    /// Whether a file with this name is in the pool.
    public func containsFile(named name: String) -> Bool {
        files.contains { $0.name == name }
    }

    /// Adds files (a file already present by name is replaced) and re-resolves every type.
    /// - Throws: ``AdminError/invalidDescriptor(_:)``; the pool is unchanged then.
    public mutating func add(_ newFiles: [Google_Protobuf_FileDescriptorProto]) throws(AdminError) {
        var all = files
        for file in newFiles {
            if let index = all.firstIndex(where: { $0.name == file.name }) {
                all[index] = file
            } else {
                all.append(file)
            }
        }
        var resolver = Resolver()
        for file in all { resolver.index(file) }
        let resolved = try resolver.resolve()
        files = all
        messages = resolved.messages
        enums = resolved.enums
        services = resolved.services
    }

    /// The message type with this fully qualified name (a leading dot is ignored).
    public func message(named name: String) -> MessageDescriptor? { messages[Self.trim(name)] }

    /// The enum type with this fully qualified name.
    public func enumType(named name: String) -> EnumDescriptor? { enums[Self.trim(name)] }

    /// The service with this fully qualified name.
    public func service(named name: String) -> ServiceDescriptor? { services[Self.trim(name)] }

    /// Service names, sorted (grpcurl's `list` order).
    public var serviceNames: [String] { services.keys.sorted() }

    /// Finds a method by `pkg.Service/Method` or `pkg.Service.Method`.
    /// - Throws: ``AdminError`` naming whichever part is missing.
    public func method(_ symbol: String) throws(AdminError) -> ServiceDescriptor.Method {
        let (serviceName, methodName) = try Self.splitMethod(symbol)
        guard let service = service(named: serviceName) else { throw .unknownService(serviceName) }
        guard let method = service.method(named: methodName) else {
            throw .unknownMethod(service: serviceName, method: methodName)
        }
        return method
    }

    /// Splits `pkg.Service/Method` or `pkg.Service.Method` into service and method names.
    public static func splitMethod(_ symbol: String) throws(AdminError) -> (service: String, method: String) {
        let name = trim(symbol)
        let separator = name.lastIndex(of: "/") ?? name.lastIndex(of: ".")
        guard let separator, separator != name.startIndex, name.index(after: separator) != name.endIndex else {
            throw .invalidMethodName(symbol)
        }
        return (String(name[..<separator]), String(name[name.index(after: separator)...]))
    }

    /// The files declaring `symbols` (services, methods, messages, enums) and every file they import,
    /// dependencies first — what `-protoset-out` writes.
    public func files(declaring symbols: [String]) -> [Google_Protobuf_FileDescriptorProto] {
        var names: [String] = []
        for symbol in symbols.map(Self.trim) {
            if let file = service(named: symbol)?.fileName ?? message(named: symbol)?.fileName ?? enumType(named: symbol)?.fileName {
                names.append(file)
            } else if let (serviceName, _) = try? Self.splitMethod(symbol), let file = service(named: serviceName)?.fileName {
                names.append(file)
            }
        }
        let byName = Dictionary(files.compactMap { file in file.name.map { ($0, file) } }, uniquingKeysWith: { first, _ in first })
        var seen = Set<String>()
        var ordered: [Google_Protobuf_FileDescriptorProto] = []
        func visit(_ name: String) {
            guard seen.insert(name).inserted, let file = byName[name] else { return }
            file.dependency.forEach(visit)
            ordered.append(file)
        }
        names.forEach(visit)
        return ordered
    }

    static func trim(_ name: String) -> String {
        name.hasPrefix(".") ? String(name.dropFirst()) : name
    }
}

extension DescriptorPool {
    /// Two-pass resolution: index every declaration by full name, then build descriptors whose
    /// map fields can see their entry types.
    private struct Resolver {
        struct RawMessage {
            var proto: Google_Protobuf_DescriptorProto
            var syntax: String
            var fileName: String
        }

        var rawMessages: [String: RawMessage] = [:]
        var enums: [String: EnumDescriptor] = [:]
        var services: [String: ServiceDescriptor] = [:]

        mutating func index(_ file: Google_Protobuf_FileDescriptorProto) {
            let package = file.package ?? ""
            let syntax = file.syntax.flatMap { $0.isEmpty ? nil : $0 } ?? "proto2"
            let fileName = file.name ?? ""
            let prefix = package.isEmpty ? "" : package + "."
            for message in file.messageType { indexMessage(message, prefix: prefix, syntax: syntax, fileName: fileName) }
            for enumType in file.enumType { indexEnum(enumType, prefix: prefix, fileName: fileName) }
            for service in file.service {
                let fullName = prefix + (service.name ?? "")
                let methods = service.method.map { method in
                    ServiceDescriptor.Method(
                        name: method.name ?? "",
                        serviceName: fullName,
                        inputType: DescriptorPool.trim(method.inputType ?? ""),
                        outputType: DescriptorPool.trim(method.outputType ?? ""),
                        clientStreaming: method.clientStreaming ?? false,
                        serverStreaming: method.serverStreaming ?? false
                    )
                }
                services[fullName] = ServiceDescriptor(fullName: fullName, methods: methods, fileName: fileName)
            }
        }

        mutating func indexMessage(_ message: Google_Protobuf_DescriptorProto, prefix: String, syntax: String, fileName: String) {
            let fullName = prefix + (message.name ?? "")
            rawMessages[fullName] = RawMessage(proto: message, syntax: syntax, fileName: fileName)
            for nested in message.nestedType { indexMessage(nested, prefix: fullName + ".", syntax: syntax, fileName: fileName) }
            for enumType in message.enumType { indexEnum(enumType, prefix: fullName + ".", fileName: fileName) }
        }

        mutating func indexEnum(_ enumType: Google_Protobuf_EnumDescriptorProto, prefix: String, fileName: String) {
            let fullName = prefix + (enumType.name ?? "")
            let values = enumType.value.map { EnumDescriptor.Value(name: $0.name ?? "", number: $0.number ?? 0) }
            enums[fullName] = EnumDescriptor(fullName: fullName, values: values, fileName: fileName)
        }

        func resolve() throws(AdminError) -> (messages: [String: MessageDescriptor], enums: [String: EnumDescriptor], services: [String: ServiceDescriptor]) {
            var messages: [String: MessageDescriptor] = [:]
            for (name, raw) in rawMessages {
                let fields = try raw.proto.field.map { proto throws(AdminError) in try field(proto, in: name, raw: raw) }
                messages[name] = MessageDescriptor(
                    fullName: name,
                    fields: fields,
                    oneofs: raw.proto.oneofDecl.map { $0.name ?? "" },
                    isMapEntry: raw.proto.options?.mapEntry ?? false,
                    syntax: raw.syntax,
                    fileName: raw.fileName
                )
            }
            for service in services.values {
                for method in service.methods {
                    for type in [method.inputType, method.outputType] where messages[type] == nil {
                        throw .invalidDescriptor("method \(method.fullName) uses \(type), which no loaded file declares")
                    }
                }
            }
            return (messages, enums, services)
        }

        func field(_ proto: Google_Protobuf_FieldDescriptorProto, in messageName: String, raw: RawMessage) throws(AdminError) -> FieldDescriptor {
            let name = proto.name ?? ""
            guard let rawKind = proto.type?.rawValue, let kind = FieldDescriptor.Kind(rawValue: rawKind) else {
                throw .invalidDescriptor("field \(messageName).\(name) has an unknown type")
            }
            let typeName = proto.typeName.map(DescriptorPool.trim)
            switch kind {
            case .message, .group:
                guard let typeName, rawMessages[typeName] != nil else {
                    throw .invalidDescriptor("field \(messageName).\(name) refers to message type \(typeName ?? "?"), which no loaded file declares")
                }
            case .enumeration:
                guard let typeName, enums[typeName] != nil else {
                    throw .invalidDescriptor("field \(messageName).\(name) refers to enum type \(typeName ?? "?"), which no loaded file declares")
                }
            default:
                break
            }
            let isRepeated = proto.label == .repeated
            let isProto3 = raw.syntax == "proto3"
            let isProto3Optional = proto.proto3Optional ?? false
            let isPacked = isRepeated && kind.isPackable && (proto.options?.packed ?? (raw.syntax != "proto2"))
            let oneofIndex = isProto3Optional ? nil : proto.oneofIndex.map(Int.init)
            let hasPresence = !isRepeated && (kind == .message || kind == .group || proto.oneofIndex != nil || !isProto3)

            var mapEntry: FieldDescriptor.MapEntry?
            if isRepeated, kind == .message, let typeName, let entry = rawMessages[typeName], entry.proto.options?.mapEntry == true {
                guard entry.proto.field.count == 2,
                    let keyProto = entry.proto.field.first(where: { $0.number == 1 }),
                    let valueProto = entry.proto.field.first(where: { $0.number == 2 })
                else {
                    throw .invalidDescriptor("map entry \(typeName) must have fields 1 (key) and 2 (value)")
                }
                mapEntry = FieldDescriptor.MapEntry(
                    key: .init(try field(keyProto, in: typeName, raw: entry)),
                    value: .init(try field(valueProto, in: typeName, raw: entry))
                )
            }
            return FieldDescriptor(
                name: name,
                number: proto.number ?? 0,
                jsonName: proto.jsonName.flatMap { $0.isEmpty ? nil : $0 } ?? FieldDescriptor.jsonName(for: name),
                kind: kind,
                typeName: typeName,
                isRepeated: isRepeated,
                isPacked: isPacked,
                hasPresence: hasPresence,
                oneofIndex: oneofIndex,
                mapEntry: mapEntry,
                isProto3Optional: isProto3Optional,
                defaultValue: proto.defaultValue
            )
        }
    }
}
