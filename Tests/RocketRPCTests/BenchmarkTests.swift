import Foundation
import NIOPosix
import RocketRPC
import Testing

/// h2load against the echo service; runs only with ROCKETRPC_BENCH=1 (use a release build:
/// `ROCKETRPC_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter BenchmarkTests`).
@Suite("Benchmark", .enabled(if: ProcessInfo.processInfo.environment["ROCKETRPC_BENCH"] == "1"))
struct BenchmarkTests {
    /// ROCKETRPC_BENCH_THREADS picks the server's event loop count (default: the shared singleton group).
    @Test func h2loadUnaryThroughput() async throws {
        let threads = ProcessInfo.processInfo.environment["ROCKETRPC_BENCH_THREADS"].flatMap { Int($0) }
        let group = threads.map { MultiThreadedEventLoopGroup(numberOfThreads: $0) }
        let h = try await TestHarness.start(eventLoopGroup: group, extraServices: [BenchService()])
        let request = TestMessage(payload: Array(repeating: 7, count: 100)).serializedBytes()
        let body = try temporaryFile([0, 0, 0, 0, UInt8(request.count)] + request)
        let port = h.port
        let output = await offPool { () -> String in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/h2load")
            process.arguments = ["-n", "200000", "-c", "10", "-m", "10", "-H", "content-type: application/grpc", "-H", "te: trailers",
                                 "-d", body, "http://127.0.0.1:\(port)/rocketrpc.bench.Echo/Unary"]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            do { try process.run() } catch { return "\(error)" }
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return String(decoding: data, as: UTF8.self)
        }
        print(output)
        #expect(output.contains("200000 succeeded"), "\(output)")
        await h.stop()
        try await group?.shutdownGracefully()
    }
}

/// The smallest possible unary handler, so the benchmark measures the runtime rather than test logic.
struct BenchService: RPCService {
    static let unary = MethodDescriptor(service: "rocketrpc.bench.Echo", method: "Unary")
    var serviceName: String { "rocketrpc.bench.Echo" }
    func register(into router: inout RPCRouter) {
        router.unary(Self.unary) { (request: TestMessage, _: ServerContext) in request }
    }
}
