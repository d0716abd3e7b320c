import Foundation
import RocketMQAPI
import RocketProto

/// Turns `.proto` source files into `FileDescriptorProto`s by running Debian's `protoc`
/// (`--descriptor_set_out --include_imports`), for servers without reflection (grpcurl's
/// `-import-path` / `-proto`).
///
/// Runs one `protoc` process per call and waits for it; the descriptor set goes through a
/// temporary file that is removed afterwards.
public struct ProtoSourceCompiler: Sendable {
    /// Directories searched for imports, in order; `/usr/include` (the well-known types) is appended.
    public var importPaths: [String]
    /// The `protoc` executable; default: the first `protoc` on `PATH`, else `/usr/bin/protoc`.
    public var protocPath: String

    /// A compiler searching `importPaths`; `protocPath` overrides the `PATH` lookup.
    public init(importPaths: [String], protocPath: String? = nil) {
        self.importPaths = importPaths
        self.protocPath = protocPath ?? Self.findProtoc()
    }

    /// Compiles `files` (paths relative to an import path, or to the current directory when no import
    /// path is given) and returns every file they need, imports included.
    /// - Throws: ``AdminError/protoCompilation(_:)`` with protoc's own diagnostics.
    public func compile(_ files: [String]) throws(AdminError) -> [Google_Protobuf_FileDescriptorProto] {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("mqadmin-\(UUID().uuidString).protoset")
        defer { try? FileManager.default.removeItem(at: output) }
        var arguments = ["--descriptor_set_out=\(output.path)", "--include_imports"]
        let paths = importPaths.isEmpty ? ["."] : importPaths
        arguments += paths.map { "-I\($0)" }
        if FileManager.default.fileExists(atPath: "/usr/include/google/protobuf/descriptor.proto") {
            arguments.append("-I/usr/include")
        }
        arguments += files

        let process = Process()
        process.executableURL = URL(fileURLWithPath: protocPath)
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw .protoCompilation("cannot run \(protocPath): \(error.localizedDescription) (apt-get install protobuf-compiler)")
        }
        let diagnostics = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw .protoCompilation(diagnostics.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        do {
            let bytes = try [UInt8](Data(contentsOf: output))
            return try Google_Protobuf_FileDescriptorSet(serializedBytes: bytes).file
        } catch {
            throw .protoCompilation("cannot read protoc's descriptor set: \(error)")
        }
    }

    static func findProtoc() -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/protoc"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return "/usr/bin/protoc"
    }
}
