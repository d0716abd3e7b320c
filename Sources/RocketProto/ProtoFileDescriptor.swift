import Foundation

/// One `.proto` file's `FileDescriptorProto`, embedded in generated code for server reflection
/// and dynamic invocation.
///
/// The serialized form is the descriptor protoc produced from the original `.proto`
/// (source info stripped); `dependencies` point at the descriptors of the files it imports,
/// so a reflection answer can include the transitive closure.
public final class ProtoFileDescriptor: Sendable {
    /// The file's path as imported, for example `grpc/health/v1/health.proto`.
    public let name: String
    /// The serialized `google.protobuf.FileDescriptorProto`.
    public let serialized: [UInt8]
    /// Descriptors of the files this one imports, in import order.
    public let dependencies: [ProtoFileDescriptor]

    /// - Parameters:
    ///   - base64: the serialized `FileDescriptorProto`, base64 encoded (compact in source, cheap to compile).
    public init(name: String, base64: String, dependencies: [ProtoFileDescriptor]) {
        self.name = name
        // The generator wrote this literal itself, so a decoding failure is a generator bug.
        guard let data = Data(base64Encoded: base64) else {
            preconditionFailure("embedded descriptor for \(name) is not valid base64")
        }
        self.serialized = [UInt8](data)
        self.dependencies = dependencies
    }

    /// This file and every file it imports, directly or not, each once, dependencies first.
    public var transitiveClosure: [ProtoFileDescriptor] {
        var seen = Set<String>()
        var ordered: [ProtoFileDescriptor] = []
        func visit(_ file: ProtoFileDescriptor) {
            guard seen.insert(file.name).inserted else { return }
            file.dependencies.forEach(visit)
            ordered.append(file)
        }
        visit(self)
        return ordered
    }
}

/// Namespace the generator extends with one static `ProtoFileDescriptor` per `.proto` file,
/// named after its path (`ProtoFiles.grpc_health_v1_health_proto`).
public enum ProtoFiles {}

/// A service implementation that knows the `.proto` file declaring it, so server reflection can
/// describe it. Generated server protocols refine this and implement it.
public protocol ProtoServiceDescribing: Sendable {
    /// The service's full protobuf name, for example `grpc.health.v1.Health`.
    var serviceName: String { get }
    /// The file that declares the service, with its imports.
    var serviceFileDescriptor: ProtoFileDescriptor { get }
}
