import Foundation
import RocketRPC
import Testing

/// Our client against a plain HTTP/2 server (nghttpd): non-gRPC answers map through gRPC's
/// HTTP-to-status table instead of hanging or crashing.
@Suite("Client against a non-gRPC HTTP/2 server", .timeLimit(.minutes(1)),
       .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/sbin/nghttpd")))
struct NghttpdInteropTests {
    @Test func http404FromAPlainHTTP2ServerIsUnimplemented() async throws {
        let port = try await unusedPort()
        let directory = NSTemporaryDirectory() + "rocketrpc-www-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/nghttpd")
        process.arguments = ["--no-tls", "-d", directory, String(port)]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer {
            // nghttpd does not exit on SIGTERM while a connection lingers; make sure it is gone.
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        let channel = RPCChannel(configuration: ChannelConfiguration(
            host: "127.0.0.1", port: port, backoff: .init(initial: .milliseconds(50), maximum: .milliseconds(100))))
        let error = await #expect(throws: RPCError.self) {
            let _: UnaryResponse<TestMessage> = try await channel.unary(
                MethodDescriptor(service: "no.Such", method: "Thing"), request: TestMessage("x"), options: CallOptions(timeout: .seconds(5), waitForReady: true))
        }
        #expect(error?.code == .unimplemented, "\(String(describing: error))")
        #expect(error?.message.contains("404") == true)
        await channel.close()
    }
}
