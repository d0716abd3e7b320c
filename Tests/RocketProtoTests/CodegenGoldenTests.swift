import Foundation
import Testing

/// Runs protoc with the built `protoc-gen-rocketmq-swift` and compares its output with committed
/// golden files, so any change to generated code is a reviewed change.
/// `UPDATE_GOLDEN=1 swift test --filter CodegenGoldenTests` rewrites them.
@Suite("Generated Swift matches the golden files")
struct CodegenGoldenTests {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The build products folder: next to this test bundle.
    static var binFolder: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    }

    static func findGenerator() throws -> URL {
        var folder = binFolder
        // The test bundle may be a directory (`….xctest/…`); walk up to the folder holding the tools.
        for _ in 0..<4 {
            let candidate = folder.appending(path: "protoc-gen-rocketmq-swift")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            folder = folder.deletingLastPathComponent()
        }
        throw GoldenError("protoc-gen-rocketmq-swift not found near \(binFolder.path): run `swift build` first")
    }

    @Test("health.proto and the all-fields test schema generate exactly the golden Swift", arguments: [
        "grpc/health/v1/health.proto",
        "rocketmq/testing/v1/fields.proto",
    ])
    func generatedSwiftMatchesGolden(proto: String) throws {
        let output = FileManager.default.temporaryDirectory.appending(path: "golden-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: output) }

        let protoc = Process()
        protoc.executableURL = URL(fileURLWithPath: "/usr/bin/protoc")
        protoc.arguments = [
            "--plugin=protoc-gen-rocketmq-swift=\(try Self.findGenerator().path)",
            "--rocketmq-swift_out=\(output.path)",
            "-I\(Self.packageRoot.appending(path: "Protos").path)", "-I/usr/include", proto,
        ]
        try protoc.run()
        protoc.waitUntilExit()
        #expect(protoc.terminationStatus == 0)

        let name = proto.replacingOccurrences(of: ".proto", with: "").map { $0.isLetter || $0.isNumber ? String($0) : "_" }.joined() + ".rocketmq.swift"
        let generated = try String(contentsOf: output.appending(path: name), encoding: .utf8)
        let golden = Self.packageRoot.appending(path: "Tests/RocketProtoTests/Golden/\(name).golden")
        if ProcessInfo.processInfo.environment["UPDATE_GOLDEN"] == "1" {
            try generated.write(to: golden, atomically: true, encoding: .utf8)
        }
        let expected = try String(contentsOf: golden, encoding: .utf8)
        #expect(generated == expected, "generated \(name) differs from \(golden.path); review and rerun with UPDATE_GOLDEN=1")
    }
}

struct GoldenError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
