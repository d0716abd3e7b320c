import ArgumentParser
import Foundation
import Logging
import NIOSSL
import RocketMQAdmin
import RocketRPC

/// `mqadmin`: grpcurl-compatible `list`, `describe` and method invocation against any gRPC server
/// with reflection (or with `.proto` files via `-import-path`/`-proto`).
///
/// Flags use grpcurl's single-dash spelling (`-plaintext`, `-max-time 5`); double dashes work too.
/// Exit codes: see ``ExitStatus``.
struct MQAdmin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mqadmin",
        abstract: "Talk to any gRPC server the way grpcurl does: list, describe, invoke with JSON.",
        discussion: """
            mqadmin [flags] HOST:PORT list [SERVICE]
            mqadmin [flags] HOST:PORT describe [SYMBOL]
            mqadmin [flags] HOST:PORT pkg.Service/Method   (request from -d '{json}' or -d @ for stdin)
            With -proto files, list and describe need no HOST:PORT.
            Exit codes: 0 ok, 1 failure, 2 usage, 64+code for a non-OK gRPC status.

            RocketMQ's admin verbs, each with its own -h (mqadmin updateTopic -h):
              \(RocketMQVerbs.configuration.subcommands.compactMap { $0.configuration.commandName }.joined(separator: ", "))
            They exit 0 ok, 1 failure (a broker that failed is named on stderr), 64 usage.
            """,
        helpNames: [.customLong("help", withSingleDash: true), .long]
    )

    @Flag(name: .customLong("plaintext", withSingleDash: true), help: "Use plain-text HTTP/2 (no TLS).")
    var plaintext = false

    @Flag(name: .customLong("insecure", withSingleDash: true), help: "Skip server certificate verification (TLS only).")
    var insecure = false

    @Option(name: .customLong("cacert", withSingleDash: true), help: "PEM file of root certificates to verify the server.")
    var cacert: String?

    @Option(name: .customLong("cert", withSingleDash: true), help: "PEM client certificate (with -key) for mutual TLS.")
    var cert: String?

    @Option(name: .customLong("key", withSingleDash: true), help: "PEM client private key (with -cert).")
    var key: String?

    @Option(name: .customLong("servername", withSingleDash: true), help: "Server name for TLS verification (SNI).")
    var serverName: String?

    @Option(name: .customShort("d"), help: "Request data as JSON; '@' reads it from stdin (several messages for streaming calls).")
    var data: String?

    @Option(name: .customShort("H"), help: "Extra header 'name: value' (repeatable); also sent with reflection requests.")
    var headers: [String] = []

    @Option(name: .customLong("rpc-header", withSingleDash: true), help: "Header 'name: value' for the invoked method only (repeatable).")
    var rpcHeaders: [String] = []

    @Option(name: .customLong("reflect-header", withSingleDash: true), help: "Header 'name: value' for reflection requests only (repeatable).")
    var reflectHeaders: [String] = []

    @Option(name: .customLong("max-time", withSingleDash: true), help: "Seconds the whole operation may take (the call's deadline).")
    var maxTime: Double?

    @Option(name: .customLong("connect-timeout", withSingleDash: true), help: "Seconds to wait for the connection (default 10).")
    var connectTimeout: Double?

    @Option(name: .customLong("max-msg-sz", withSingleDash: true), help: "Largest response message accepted, in bytes (default 4 MiB).")
    var maxMessageSize: Int?

    @Option(name: .customLong("keepalive-time", withSingleDash: true), help: "Seconds of idleness before a keepalive PING (and its timeout).")
    var keepaliveTime: Double?

    @Option(name: .customLong("format", withSingleDash: true), help: "Request and response format: json or text.")
    var format = "json"

    @Flag(name: .customLong("emit-defaults", withSingleDash: true), help: "Print fields at their default value in JSON output.")
    var emitDefaults = false

    @Flag(name: .customLong("keep-proto-names", withSingleDash: true), help: "Use .proto field names instead of lowerCamelCase in JSON output.")
    var keepProtoNames = false

    @Flag(name: .customLong("allow-unknown-fields", withSingleDash: true), help: "Ignore JSON members that name no field.")
    var allowUnknownFields = false

    @Option(name: .customLong("import-path", withSingleDash: true), help: "Directory to resolve -proto files and imports in (repeatable).")
    var importPaths: [String] = []

    @Option(name: .customLong("proto", withSingleDash: true), help: "A .proto file to take types from instead of reflection (repeatable).")
    var protoFiles: [String] = []

    @Option(name: .customLong("protoset", withSingleDash: true), help: "A file with an encoded FileDescriptorSet to take types from instead of reflection (repeatable).")
    var protosets: [String] = []

    @Option(name: .customLong("protoset-out", withSingleDash: true), help: "Write the descriptors of what was listed, described or invoked (with imports) to this file as a FileDescriptorSet.")
    var protosetOut: String?

    @Flag(name: .customLong("msg-template", withSingleDash: true), help: "With describe, also print a JSON template of a message (valid request data).")
    var messageTemplate = false

    @Flag(name: .customShort("v"), help: "Verbose: print the method, request metadata, response headers and trailers.")
    var verbose = false

    @Flag(name: .customLong("vv", withSingleDash: true), help: "Very verbose; the same as -v here (no timing data).")
    var veryVerbose = false

    @Argument(help: "[HOST:PORT] (list [SERVICE] | describe [SYMBOL] | pkg.Service/Method)")
    var arguments: [String] = []

    /// The grpcurl-compatible mode (see `Entry` for how RocketMQ verbs are told apart).
    static func runGeneric() async {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .critical
            return handler
        }
        let code: Int32
        do {
            let command = try parseAsRoot()
            if var admin = command as? MQAdmin {
                code = await admin.execute()
            } else {
                // `-help` parses as ArgumentParser's own help command, which prints when run.
                var other = command
                try other.run()
                code = 0
            }
        } catch {
            if MQAdmin.exitCode(for: error) == .success {
                Output.write(MQAdmin.fullMessage(for: error))
                code = 0
            } else {
                let message = MQAdmin.fullMessage(for: error)
                Output.error((message + "\nTry 'mqadmin -help' for more details.\n"))
                code = ExitStatus.usage
            }
        }
        Foundation.exit(code)
    }

    mutating func run() async throws {
        let code = await execute()
        if code != 0 { throw ExitCode(code) }
    }

    /// Runs the command; every outcome becomes an exit code here.
    mutating func execute() async -> Int32 {
        do {
            try await perform()
            return 0
        } catch let exit as Exit {
            if !exit.message.isEmpty { Output.error(exit.message) }
            return exit.code
        } catch {
            Output.error("\(ExitStatus.describe(error))\n")
            return ExitStatus.failure
        }
    }
}
