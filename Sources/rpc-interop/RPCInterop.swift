import ArgumentParser
import Foundation
import Logging
import NIOPosix
import RocketRPC
import RocketRPCServices
import ServerAllocator

/// `rpc-interop`: gRPC's interop test server and client on RocketRPC, so the wire can be checked
/// against other gRPC implementations the way they check each other.
@main
struct RPCInterop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rpc-interop",
        abstract: "gRPC interop test server and client (grpc.testing.TestService) on RocketRPC.",
        subcommands: [Server.self, Client.self, Bench.self]
    )

    struct Server: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Serve grpc.testing.TestService (plus health and reflection).")

        @Option(name: [.customLong("port"), .customLong("server_port")], help: "Port to listen on (0 = any free port).")
        var port = 0

        @Option(help: "Address to bind.")
        var host = "127.0.0.1"

        @Option(help: "Event-loop threads serving connections (default: one per core).")
        var eventLoops: Int?

        @Flag(help: "Serve UnaryCall with the generated async handler instead of the immediate one (to measure that path).")
        var asyncUnary = false

        func validate() throws {
            if let eventLoops, eventLoops < 1 { throw ValidationError("--event-loops must be at least 1") }
        }

        func run() async throws {
            ServerAllocator.activate()
            LoggingSystem.bootstrap(StreamLogHandler.standardError)
            let health = HealthService(serving: [Grpc_Testing_TestService.serviceName])
            let services: [any RPCService] = [TestServiceProvider(immediateUnary: !asyncUnary), health]
            var configuration = ServerConfiguration()
            configuration.host = host
            configuration.port = port
            let group = eventLoops.map { MultiThreadedEventLoopGroup(numberOfThreads: $0) }
            let server = RPCServer(configuration: configuration, services: services + ServerReflection.services(describing: services), eventLoopGroup: group)
            try await server.start()
            // Tests read this line to learn the port.
            say("listening on \(host):\(server.localPort ?? port)")
            try await server.run()
        }
    }

    struct Client: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run interop test cases against a TestService server.")

        @Option(name: [.customLong("server-host"), .customLong("server_host")])
        var serverHost = "127.0.0.1"

        @Option(name: [.customLong("server-port"), .customLong("server_port")])
        var serverPort: Int

        @Option(name: [.customLong("test-case"), .customLong("test_case")], help: "A case name, a comma-separated list, or all.")
        var testCase = "all"

        func run() async throws {
            let channel = RPCChannel(configuration: ChannelConfiguration(host: serverHost, port: serverPort))
            let cases = InteropTestCases(channel: channel)
            let names = testCase == "all" ? InteropTestCases.names : testCase.split(separator: ",").map(String.init)
            var failures = 0
            for name in names {
                let started = ContinuousClock.now
                do {
                    try await cases.run(name)
                    say("PASS \(name) (\(ContinuousClock.now - started))")
                } catch {
                    failures += 1
                    say("FAIL \(name): \(error)")
                }
            }
            await channel.close()
            if failures > 0 { throw ExitCode(1) }
        }
    }
}

/// Prints a line at once (unbuffered): tests and scripts read these lines while the process runs.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
