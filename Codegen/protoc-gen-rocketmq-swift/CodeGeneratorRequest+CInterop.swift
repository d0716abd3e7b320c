#if canImport(Glibc)
import Glibc
#endif
import CProtobufC
import RocketMQProtoC

// Reads protoc's CodeGeneratorRequest and writes the CodeGeneratorResponse with protobuf-c.
// All pointer work of the generator is in this file; everything else sees the Swift model.

/// What protoc asked for: the files to generate, every file they import, and the parameter string.
struct GenerationRequest {
    var filesToGenerate: [String]
    var parameter: String
    var files: [ProtoFile]

    /// Unpacks a serialized `CodeGeneratorRequest`.
    init(serialized bytes: [UInt8]) throws {
        let unpacked = bytes.withUnsafeBufferPointer {
            google__protobuf__compiler__code_generator_request__unpack(nil, $0.count, $0.baseAddress)
        }
        guard let request = unpacked else { throw GeneratorError("protoc sent a CodeGeneratorRequest protobuf-c cannot decode") }
        defer { google__protobuf__compiler__code_generator_request__free_unpacked(request, nil) }

        filesToGenerate = strings(request.pointee.file_to_generate, request.pointee.n_file_to_generate)
        parameter = request.pointee.parameter.map { String(cString: $0) } ?? ""
        files = try pointers(request.pointee.proto_file, request.pointee.n_proto_file).map(ProtoFile.init(c:))
    }
}

/// Packs a `CodeGeneratorResponse` with the generated files or an error, announcing proto3 `optional` support.
func packResponse(files: [(name: String, content: String)], error: String?) -> [UInt8] {
    var response = Google__Protobuf__Compiler__CodeGeneratorResponse()
    google__protobuf__compiler__code_generator_response__init(&response)
    response.has_supported_features = 1
    response.supported_features = UInt64(GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__FEATURE__FEATURE_PROTO3_OPTIONAL.rawValue)

    // Owned here until packing is done: the C strings and the file structs.
    var cStrings: [UnsafeMutablePointer<CChar>] = []
    defer { cStrings.forEach { free($0) } }
    func duplicate(_ string: String) -> UnsafeMutablePointer<CChar>? {
        let copy = strdup(string)
        if let copy { cStrings.append(copy) }
        return copy
    }
    let entries = UnsafeMutablePointer<Google__Protobuf__Compiler__CodeGeneratorResponse__File>.allocate(capacity: max(files.count, 1))
    let list = UnsafeMutablePointer<UnsafeMutablePointer<Google__Protobuf__Compiler__CodeGeneratorResponse__File>?>.allocate(capacity: max(files.count, 1))
    defer {
        entries.deallocate()
        list.deallocate()
    }
    for (index, file) in files.enumerated() {
        google__protobuf__compiler__code_generator_response__file__init(entries + index)
        entries[index].name = duplicate(file.name)
        entries[index].content = duplicate(file.content)
        list[index] = entries + index
    }
    response.n_file = files.count
    response.file = list
    if let error { response.error = duplicate(error) }

    let size = google__protobuf__compiler__code_generator_response__get_packed_size(&response)
    return [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
        count = buffer.baseAddress.map { google__protobuf__compiler__code_generator_response__pack(&response, $0) } ?? 0
    }
}

// MARK: - Conversion from the C structs

private func strings(_ list: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ count: Int) -> [String] {
    guard let list, count > 0 else { return [] }
    return UnsafeBufferPointer(start: list, count: count).map { $0.map { String(cString: $0) } ?? "" }
}

private func pointers<T>(_ list: UnsafeMutablePointer<UnsafeMutablePointer<T>?>?, _ count: Int) -> [UnsafeMutablePointer<T>] {
    guard let list, count > 0 else { return [] }
    return UnsafeBufferPointer(start: list, count: count).compactMap { $0 }
}

private func string(_ pointer: UnsafeMutablePointer<CChar>?) -> String {
    pointer.map { String(cString: $0) } ?? ""
}

/// Leading comments by source path (the `SourceCodeInfo` path of each declaration).
fileprivate struct Comments {
    private var byPath: [[Int32]: String] = [:]

    init(_ info: UnsafeMutablePointer<Google__Protobuf__SourceCodeInfo>?) {
        guard let info else { return }
        for location in pointers(info.pointee.location, info.pointee.n_location) {
            guard let leading = location.pointee.leading_comments else { continue }
            let path = location.pointee.path.map { Array(UnsafeBufferPointer(start: $0, count: location.pointee.n_path)) } ?? []
            byPath[path] = String(cString: leading)
        }
    }

    subscript(_ path: [Int32]) -> String { byPath[path] ?? "" }
}

// Field numbers of FileDescriptorProto / DescriptorProto / ... used in SourceCodeInfo paths.
private enum SourcePath {
    static let fileMessage: Int32 = 4, fileEnum: Int32 = 5, fileService: Int32 = 6
    static let messageField: Int32 = 2, messageNested: Int32 = 3, messageEnum: Int32 = 4
    static let enumValue: Int32 = 2, serviceMethod: Int32 = 2
}

extension ProtoFile {
    init(c file: UnsafeMutablePointer<Google__Protobuf__FileDescriptorProto>) throws {
        let comments = Comments(file.pointee.source_code_info)
        let package = string(file.pointee.package)
        let scope = package.isEmpty ? "" : package + "."
        name = string(file.pointee.name)
        self.package = package
        syntax = file.pointee.syntax.map { String(cString: $0) } ?? "proto2"
        dependencies = strings(file.pointee.dependency, file.pointee.n_dependency)
        let isProto3 = syntax == "proto3"
        messages = try pointers(file.pointee.message_type, file.pointee.n_message_type).enumerated().map { index, message in
            try MessageDef(c: message, scope: scope, path: [SourcePath.fileMessage, Int32(index)], comments: comments, proto3: isProto3)
        }
        enums = pointers(file.pointee.enum_type, file.pointee.n_enum_type).enumerated().map { index, enumeration in
            EnumDef(c: enumeration, scope: scope, path: [SourcePath.fileEnum, Int32(index)], comments: comments)
        }
        services = pointers(file.pointee.service, file.pointee.n_service).enumerated().map { index, service in
            let path = [SourcePath.fileService, Int32(index)]
            let serviceName = string(service.pointee.name)
            return ServiceDef(
                fullName: scope + serviceName,
                name: serviceName,
                methods: pointers(service.pointee.method, service.pointee.n_method).enumerated().map { methodIndex, method in
                    MethodDef(
                        name: string(method.pointee.name),
                        inputType: String(string(method.pointee.input_type).drop { $0 == "." }),
                        outputType: String(string(method.pointee.output_type).drop { $0 == "." }),
                        clientStreaming: method.pointee.client_streaming != 0,
                        serverStreaming: method.pointee.server_streaming != 0,
                        comment: comments[path + [SourcePath.serviceMethod, Int32(methodIndex)]]
                    )
                },
                comment: comments[path]
            )
        }

        // Reflection serves descriptors without source info, as other gRPC servers do.
        let sourceInfo = file.pointee.source_code_info
        file.pointee.source_code_info = nil
        defer { file.pointee.source_code_info = sourceInfo }
        let size = google__protobuf__file_descriptor_proto__get_packed_size(file)
        descriptorBytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            count = buffer.baseAddress.map { google__protobuf__file_descriptor_proto__pack(file, $0) } ?? 0
        }
    }
}

extension MessageDef {
    fileprivate init(c message: UnsafeMutablePointer<Google__Protobuf__DescriptorProto>, scope: String, path: [Int32], comments: Comments, proto3: Bool) throws {
        name = string(message.pointee.name)
        fullName = scope + name
        comment = comments[path]
        isMapEntry = message.pointee.options.map { $0.pointee.map_entry != 0 } ?? false
        let nestedScope = fullName + "."

        let oneofs = pointers(message.pointee.oneof_decl, message.pointee.n_oneof_decl).map { string($0.pointee.name) }
        var fields: [FieldDef] = []
        var realOneofs = Set<Int>()
        for (index, field) in pointers(message.pointee.field, message.pointee.n_field).enumerated() {
            let f = field.pointee
            let isProto3Optional = f.has_proto3_optional != 0 && f.proto3_optional != 0
            let label: FieldDef.Label
            switch f.label {
            case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REPEATED: label = .repeated
            case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REQUIRED: label = .required
            default: label = (isProto3Optional || !proto3) ? .optional : .singular
            }
            let oneofIndex = (f.has_oneof_index != 0 && !isProto3Optional) ? Int(f.oneof_index) : nil
            if let oneofIndex { realOneofs.insert(oneofIndex) }
            let kind = try FieldDef.Kind(protoType: Int(f.type.rawValue))
            fields.append(FieldDef(
                name: string(f.name),
                number: f.number,
                label: label,
                kind: kind,
                typeName: String(string(f.type_name).drop { $0 == "." }),
                oneofIndex: oneofIndex,
                hasPresence: label == .optional || label == .required || (kind == .message && label != .repeated),
                comment: comments[path + [SourcePath.messageField, Int32(index)]]
            ))
        }
        self.fields = fields
        // Synthetic oneofs of proto3 `optional` fields come last and get no Swift API.
        oneofNames = oneofs.enumerated().map { realOneofs.contains($0.offset) ? $0.element : "" }
        nested = try pointers(message.pointee.nested_type, message.pointee.n_nested_type).enumerated().map { index, nested in
            try MessageDef(c: nested, scope: nestedScope, path: path + [SourcePath.messageNested, Int32(index)], comments: comments, proto3: proto3)
        }
        enums = pointers(message.pointee.enum_type, message.pointee.n_enum_type).enumerated().map { index, enumeration in
            EnumDef(c: enumeration, scope: nestedScope, path: path + [SourcePath.messageEnum, Int32(index)], comments: comments)
        }
    }
}

extension EnumDef {
    fileprivate init(c enumeration: UnsafeMutablePointer<Google__Protobuf__EnumDescriptorProto>, scope: String, path: [Int32], comments: Comments) {
        name = string(enumeration.pointee.name)
        fullName = scope + name
        comment = comments[path]
        values = pointers(enumeration.pointee.value, enumeration.pointee.n_value).enumerated().map { index, value in
            Value(
                name: string(value.pointee.name),
                number: value.pointee.number,
                comment: comments[path + [SourcePath.enumValue, Int32(index)]]
            )
        }
    }
}

extension FieldDef.Kind {
    /// From `FieldDescriptorProto.Type` (1 = double … 18 = sint64).
    init(protoType: Int) throws {
        let kinds: [FieldDef.Kind] = [
            .double, .float, .int64, .uint64, .int32, .fixed64, .fixed32, .bool, .string, .group, .message,
            .bytes, .uint32, .enumeration, .sfixed32, .sfixed64, .sint32, .sint64,
        ]
        guard (1...kinds.count).contains(protoType) else { throw GeneratorError("unknown field type \(protoType)") }
        self = kinds[protoType - 1]
        if self == .group { throw GeneratorError("proto2 groups are not supported") }
    }
}
