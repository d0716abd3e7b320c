import Foundation
import PackagePlugin

/// Runs Debian's `protoc` with `protoc-gen-rocketmq-swift` on the `.proto` files a target lists
/// in its `rocketmq-codegen.json`:
///
/// ```json
/// { "protos": ["grpc/health/v1/health.proto"], "imports": ["RocketMQAPI"] }
/// ```
///
/// Paths are relative to the package's `Protos/` folder; well-known types
/// (`google/protobuf/…`) come from `/usr/include` (Debian's libprotobuf-dev). `imports` names
/// the modules that hold the Swift types of `.proto` files imported but generated elsewhere.
@main
struct RocketMQCodegenPlugin: BuildToolPlugin {
    struct Configuration: Decodable {
        var protos: [String]
        var imports: [String]?
    }

    static let systemIncludes = ["/usr/include", "/usr/local/include"]

    func createBuildCommands(context: PluginContext, target: Target) async throws -> [Command] {
        guard let target = target as? SourceModuleTarget else { return [] }
        let configURL = target.directoryURL.appending(path: "rocketmq-codegen.json")
        guard FileManager.default.fileExists(atPath: configURL.path) else { return [] }
        let configuration = try JSONDecoder().decode(Configuration.self, from: Data(contentsOf: configURL))

        let protoRoot = context.package.directoryURL.appending(path: "Protos")
        let includes = [protoRoot.path] + Self.systemIncludes
        let inputs = try configuration.protos.map { proto -> URL in
            for include in includes {
                let candidate = URL(fileURLWithPath: include).appending(path: proto)
                if FileManager.default.fileExists(atPath: candidate.path) { return candidate }
            }
            throw PluginError("\(proto) (listed in \(configURL.path)) is in none of \(includes)")
        }

        let generator = try context.tool(named: "protoc-gen-rocketmq-swift")
        let output = context.pluginWorkDirectoryURL.appending(path: "generated")
        var arguments = [
            "--plugin=protoc-gen-rocketmq-swift=\(generator.url.path)",
            "--rocketmq-swift_out=\(output.path)",
        ]
        if let imports = configuration.imports, !imports.isEmpty {
            arguments.append("--rocketmq-swift_opt=Imports=\(imports.joined(separator: "+"))")
        }
        arguments += includes.map { "-I\($0)" }
        arguments += configuration.protos

        return [
            .buildCommand(
                displayName: "Generating Swift for \(configuration.protos.count) .proto files in \(target.name)",
                executable: try Self.protoc(),
                arguments: arguments,
                inputFiles: inputs + [configURL, generator.url],
                outputFiles: configuration.protos.map { output.appending(path: Self.outputName($0)) }
            )
        ]
    }

    /// Must match `FileGenerator.outputName` in the generator.
    static func outputName(_ protoPath: String) -> String {
        var name = protoPath
        if name.hasSuffix(".proto") { name.removeLast(6) }
        return String(name.map { $0.isLetter || $0.isNumber ? $0 : "_" }) + ".rocketmq.swift"
    }

    /// `context.tool(named:)` does not find Debian's /usr/bin/protoc, so look it up on PATH.
    static func protoc() throws -> URL {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for directory in path.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/local/bin"] {
            let candidate = URL(fileURLWithPath: directory).appending(path: "protoc")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw PluginError("protoc not found on PATH: apt-get install protobuf-compiler")
    }
}

struct PluginError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
