// protoc-gen-rocketmq-swift: a protoc plugin that turns .proto files into Swift messages,
// enums, client stubs and server protocols running on RocketProto (protobuf-c) and RocketRPC
// (nghttp2). protoc runs it with a CodeGeneratorRequest on stdin and reads the response on stdout.
//
// Parameter (`--rocketmq-swift_opt=`): comma-separated `Imports=ModuleA+ModuleB`, the modules
// that hold Swift types of imported .proto files generated elsewhere.
#if canImport(Glibc)
import Glibc
#endif

func readStandardInput() -> [UInt8] {
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
        if count <= 0 { break }
        bytes.append(contentsOf: chunk[0..<count])
    }
    return bytes
}

func writeStandardOutput(_ bytes: [UInt8]) {
    var offset = 0
    while offset < bytes.count {
        let written = bytes[offset...].withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
        if written <= 0 { break }
        offset += written
    }
}

func generate(_ request: GenerationRequest) throws -> [(name: String, content: String)] {
    var imports: [String] = []
    for option in request.parameter.split(separator: ",") {
        let pair = option.split(separator: "=", maxSplits: 1).map { String($0).trimmingSpaces() }
        guard pair.count == 2 else { throw GeneratorError("malformed option \(option)") }
        switch pair[0] {
        case "Imports": imports = pair[1].split(separator: "+").map(String.init)
        default: throw GeneratorError("unknown option \(pair[0])")
        }
    }
    let types = TypeIndex(files: request.files)
    let generator = FileGenerator(types: types, moduleImports: imports)
    let byName = Dictionary(request.files.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    return try request.filesToGenerate.map { name in
        guard let file = byName[name] else { throw GeneratorError("protoc did not send \(name)") }
        return (FileGenerator.outputName(name), try generator.generate(file))
    }
}

extension String {
    func trimmingSpaces() -> String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}

let response: [UInt8]
do {
    let request = try GenerationRequest(serialized: readStandardInput())
    response = packResponse(files: try generate(request), error: nil)
} catch {
    response = packResponse(files: [], error: "protoc-gen-rocketmq-swift: \(error)")
}
writeStandardOutput(response)
