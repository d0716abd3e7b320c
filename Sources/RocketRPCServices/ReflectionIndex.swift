import RocketMQAPI
import RocketProto

/// What server reflection knows: every served `.proto` file (with its imports) by file name,
/// and the file declaring each symbol (package-qualified messages, fields, enums, enum values,
/// services and methods).
///
/// Built once from the generated `ProtoFileDescriptor`s; immutable afterwards.
struct ReflectionIndex: Sendable {
    /// Full service names, sorted, as `list_services` reports them.
    let serviceNames: [String]
    private let files: [String: ProtoFileDescriptor]
    private let symbols: [String: String]
    private let messageNames: Set<String>

    init(services: [any ProtoServiceDescribing]) {
        var files: [String: ProtoFileDescriptor] = [:]
        for service in services {
            for file in service.serviceFileDescriptor.transitiveClosure { files[file.name] = file }
        }
        var symbols: [String: String] = [:]
        var messages = Set<String>()
        for file in files.values {
            // The generator embedded this descriptor; if it does not decode, the file is skipped rather than served wrong.
            guard let proto = try? Google_Protobuf_FileDescriptorProto(serializedBytes: file.serialized) else { continue }
            let scope = proto.package.map { $0.isEmpty ? "" : $0 + "." } ?? ""
            func add(_ name: String) { symbols[name] = file.name }
            func addEnum(_ enumeration: Google_Protobuf_EnumDescriptorProto, scope: String) {
                add(scope + (enumeration.name ?? ""))
                // Enum values are scoped as siblings of their enum, as in C++.
                for value in enumeration.value { add(scope + (value.name ?? "")) }
            }
            func addMessage(_ message: Google_Protobuf_DescriptorProto, scope: String) {
                let name = scope + (message.name ?? "")
                add(name)
                messages.insert(name)
                for field in message.field { add(name + "." + (field.name ?? "")) }
                for nested in message.nestedType { addMessage(nested, scope: name + ".") }
                for enumeration in message.enumType { addEnum(enumeration, scope: name + ".") }
            }
            proto.messageType.forEach { addMessage($0, scope: scope) }
            proto.enumType.forEach { addEnum($0, scope: scope) }
            for service in proto.service {
                let name = scope + (service.name ?? "")
                add(name)
                for method in service.method { add(name + "." + (method.name ?? "")) }
            }
        }
        self.files = files
        self.symbols = symbols
        self.messageNames = messages
        self.serviceNames = Set(services.map(\.serviceName)).sorted()
    }

    /// A reflection answer, independent of the v1 / v1alpha message types.
    enum Answer: Equatable {
        case files([[UInt8]])
        case services([String])
        case extensionNumbers(type: String, numbers: [Int32])
        case error(code: Int32, message: String)
    }

    enum Question {
        case fileByFilename(String)
        case fileContainingSymbol(String)
        case fileContainingExtension(type: String, number: Int32)
        case allExtensionNumbers(type: String)
        case listServices
        case none
    }

    private static let notFound: Int32 = 5
    private static let invalidArgument: Int32 = 3

    func answer(_ question: Question) -> Answer {
        switch question {
        case .listServices:
            return .services(serviceNames)
        case .fileByFilename(let name):
            guard let file = files[name] else { return .error(code: Self.notFound, message: "file not found: \(name)") }
            return .files(Self.serialized(file))
        case .fileContainingSymbol(let symbol):
            let name = symbol.hasPrefix(".") ? String(symbol.dropFirst()) : symbol
            guard let fileName = symbols[name], let file = files[fileName] else {
                return .error(code: Self.notFound, message: "symbol not found: \(symbol)")
            }
            return .files(Self.serialized(file))
        case .fileContainingExtension(let type, let number):
            // The served schemas declare no extensions.
            return .error(code: Self.notFound, message: "extension not found: \(type) #\(number)")
        case .allExtensionNumbers(let type):
            guard messageNames.contains(type) else { return .error(code: Self.notFound, message: "type not found: \(type)") }
            return .extensionNumbers(type: type, numbers: [])
        case .none:
            return .error(code: Self.invalidArgument, message: "empty reflection request: set one of message_request")
        }
    }

    /// The file first, then everything it imports, as grpc's reflection clients expect.
    private static func serialized(_ file: ProtoFileDescriptor) -> [[UInt8]] {
        [file.serialized] + file.transitiveClosure.dropLast().reversed().map(\.serialized)
    }
}
