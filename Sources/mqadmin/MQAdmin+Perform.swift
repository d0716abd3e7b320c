import Foundation
import NIOSSL
import RocketMQAPI
import RocketMQAdmin
import RocketRPC
import Synchronization

extension MQAdmin {
    /// What the positional arguments ask for.
    enum Action {
        case list(service: String?)
        case describe(symbol: String?)
        case invoke(method: String)
    }

    func usageError(_ message: String) -> Exit {
        Exit(code: ExitStatus.usage, message: "\(message)\nTry 'mqadmin -help' for more details.\n")
    }

    func failure(_ message: String, _ error: any Error) -> Exit {
        Exit(code: ExitStatus.failure, message: "\(message): \(ExitStatus.describe(error))\n")
    }

    /// Parses `[HOST:PORT] verb [symbol]` exactly as grpcurl does.
    func parseArguments() throws -> (ServerAddress?, Action) {
        var args = arguments[...]
        guard !args.isEmpty else { throw usageError("Too few arguments.") }
        var target: String?
        if args.first != "list", args.first != "describe" {
            target = args.popFirst()
        }
        guard let verb = args.popFirst() else { throw usageError("Too few arguments.") }
        let action: Action
        switch verb {
        case "list": action = .list(service: args.popFirst())
        case "describe": action = .describe(symbol: args.popFirst())
        default: action = .invoke(method: verb)
        }
        guard args.isEmpty else { throw usageError("Too many arguments.") }
        if case .invoke = action, target == nil { throw usageError("No host:port specified.") }
        if target == nil, protoFiles.isEmpty, protosets.isEmpty {
            throw usageError("No host:port specified, no protoset specified, and no proto sources specified.")
        }
        guard let target else { return (nil, action) }
        guard let address = ServerAddress(parsing: target) else {
            throw usageError("Invalid target \"\(target)\": expected HOST:PORT.")
        }
        return (address, action)
    }

    func validateFlags() throws {
        if format != "json", format != "text" { throw usageError("The -format option must be 'json' or 'text'.") }
        if let connectTimeout, connectTimeout < 0 { throw usageError("The -connect-timeout argument must not be negative.") }
        if let maxTime, maxTime < 0 { throw usageError("The -max-time argument must not be negative.") }
        if !protosets.isEmpty, !protoFiles.isEmpty { throw usageError("Use either -protoset files or -proto files, but not both.") }
        if let maxMessageSize, maxMessageSize < 0 { throw usageError("The -max-msg-sz argument must not be negative.") }
        if let keepaliveTime, keepaliveTime < 0 { throw usageError("The -keepalive-time argument must not be negative.") }
        if insecure, plaintext { throw usageError("The -insecure argument can only be used with TLS.") }
        if cert != nil || key != nil {
            if plaintext { throw usageError("The -cert and -key arguments can only be used with TLS.") }
            if (cert == nil) != (key == nil) { throw usageError("The -cert and -key arguments must be used together and both be present.") }
        }
    }

    /// Metadata from `name: value` strings (`-H`, `-rpc-header`, `-reflect-header`).
    func metadata(_ headers: [String]) throws -> Metadata {
        var metadata = Metadata()
        for header in headers {
            guard let colon = header.firstIndex(of: ":") else {
                throw usageError("Invalid header \"\(header)\": expected 'name: value'.")
            }
            let name = header[..<colon].trimmingCharacters(in: .whitespaces)
            let value = header[header.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            guard !name.isEmpty else { throw usageError("Invalid header \"\(header)\": the name is empty.") }
            metadata.add(name, value)
        }
        return metadata
    }

    func channelConfiguration(_ address: ServerAddress) throws -> ChannelConfiguration {
        var configuration = ChannelConfiguration(host: address.host, port: address.port)
        // grpcurl: 10 s unless -connect-timeout; -max-time bounds the whole operation, dial included.
        var connectSeconds = connectTimeout.flatMap { $0 > 0 ? $0 : nil } ?? 10
        if let maxTime, maxTime > 0 { connectSeconds = min(connectSeconds, maxTime) }
        configuration.connectTimeout = Self.duration(seconds: connectSeconds)
        if let maxMessageSize, maxMessageSize > 0 { configuration.maxReceiveMessageSize = maxMessageSize }
        if let keepaliveTime, keepaliveTime > 0 {
            let interval = Self.duration(seconds: keepaliveTime)
            configuration.keepalive = .init(pingInterval: interval, pingTimeout: interval)
        }
        if !plaintext {
            var tls = ChannelConfiguration.TLS(insecureSkipVerify: insecure, serverName: serverName)
            do {
                if let cacert, !insecure {
                    tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(cacert))
                }
                if let cert, let key {
                    tls.certificateChain = try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) }
                    tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
                }
            } catch {
                throw Exit(code: ExitStatus.failure, message: "Failed to create TLS config: \(error)\n")
            }
            configuration.tls = tls
        }
        return configuration
    }

    static func duration(seconds: Double) -> Duration {
        .nanoseconds(Int64(min(seconds, 1e9) * 1e9))
    }

    /// The command's whole job; throws ``Exit`` for every non-zero ending it words itself.
    mutating func perform() async throws {
        try validateFlags()
        let (address, action) = try parseArguments()
        let rpcMetadata = try metadata(headers + rpcHeaders)
        let reflectionMetadata = try metadata(headers + reflectHeaders)
        let deadline = maxTime.flatMap { $0 > 0 ? ContinuousClock.now.advanced(by: Self.duration(seconds: $0)) : nil }

        if case .invoke = action {} else if data != nil {
            Output.error("Warning: The -d argument is not used with 'list' or 'describe' verb.\n")
        }
        var channel: RPCChannel?
        if let address { channel = RPCChannel(configuration: try channelConfiguration(address)) }
        do {
            try await run(action, channel: channel, address: address, rpcMetadata: rpcMetadata, reflectionMetadata: reflectionMetadata, deadline: deadline)
            await Self.close(channel)
        } catch {
            await Self.close(channel)
            throw error
        }
    }

    /// Sends GOAWAY and waits at most 200 ms for the connection to close: over TLS, RocketRPC's close
    /// waits for the server's close_notify, which some servers (grpcio) never send, and NIOSSL's
    /// shutdown timeout is 5 s. The process is about to exit, so nothing is lost by not waiting.
    static func close(_ channel: RPCChannel?) async {
        guard let channel else { return }
        let closed = Mutex(false)
        Task {
            await channel.close()
            closed.withLock { $0 = true }
        }
        for _ in 0..<20 where !closed.withLock({ $0 }) {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    private func run(_ action: Action, channel: RPCChannel?, address: ServerAddress?, rpcMetadata: Metadata, reflectionMetadata: Metadata, deadline: ContinuousClock.Instant?) async throws {
        var source: SchemaSource
        if !protosets.isEmpty {
            do {
                var files: [Google_Protobuf_FileDescriptorProto] = []
                for path in protosets {
                    let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
                    files += try Google_Protobuf_FileDescriptorSet(serializedBytes: bytes).file
                }
                source = .files(try DescriptorPool(files: files))
            } catch {
                throw failure("Failed to process proto descriptor sets.", error)
            }
        } else if !protoFiles.isEmpty {
            do {
                let files = try ProtoSourceCompiler(importPaths: importPaths).compile(protoFiles)
                source = .files(try DescriptorPool(files: files))
            } catch {
                throw failure("Failed to process proto source files.", error)
            }
        } else if let channel {
            source = .reflection(ReflectionClient(channel: channel, metadata: reflectionMetadata, deadline: deadline))
        } else {
            throw usageError("No host:port specified, no protoset specified, and no proto sources specified.")
        }

        var symbols: [String] = []
        switch action {
        case .list(let service):
            symbols = try await list(service, source: &source, address: address)
        case .describe(let symbol):
            symbols = try await describe(symbol, source: &source, address: address)
        case .invoke(let methodName):
            guard let channel, let address else { throw usageError("No host:port specified.") }
            symbols = [methodName]
            try await invoke(methodName, source: &source, channel: channel, address: address, metadata: rpcMetadata, deadline: deadline)
        }
        if let protosetOut { try await writeProtoset(protosetOut, symbols: symbols, source: &source) }
    }

    /// `-protoset-out`: the files declaring `symbols`, with their imports, as a FileDescriptorSet.
    func writeProtoset(_ path: String, symbols: [String], source: inout SchemaSource) async throws {
        do {
            for symbol in symbols where !source.pool.knows(symbol) {
                do {
                    try await source.load(symbol)
                } catch AdminError.unknownSymbol {
                    // `pkg.Service/Method`: reflection knows the service.
                    guard let (service, _) = try? DescriptorPool.splitMethod(symbol) else { throw AdminError.unknownSymbol(symbol) }
                    try await source.load(service)
                }
            }
            let files = source.pool.files(declaring: symbols)
            try Data(Google_Protobuf_FileDescriptorSet(file: files).serializedBytes()).write(to: URL(fileURLWithPath: path))
        } catch {
            throw failure("Failed to write protoset to \(path)", error)
        }
    }

    /// A failure as grpcurl words it: a failed dial, or `message: cause`.
    func classify(_ error: any Error, _ message: String, address: ServerAddress?) -> Exit {
        if let exit = error as? Exit { return exit }
        if ExitStatus.isConnectionFailure(error), let address {
            return failure("Failed to dial target host \"\(address)\"", error)
        }
        return failure(message, error)
    }

    /// Prints services or methods; returns the symbols listed (for `-protoset-out`).
    func list(_ service: String?, source: inout SchemaSource, address: ServerAddress?) async throws -> [String] {
        if let service {
            do {
                let methods = try await source.listMethods(of: service)
                Output.write(methods.isEmpty ? "(No methods)" : methods.joined(separator: "\n"))
                return [service]
            } catch {
                throw classify(error, "Failed to list methods for service \"\(service)\"", address: address)
            }
        } else {
            do {
                let services = try await source.listServices()
                Output.write(services.isEmpty ? "(No services)" : services.joined(separator: "\n"))
                return services
            } catch {
                throw classify(error, "Failed to list services", address: address)
            }
        }
    }

    /// Prints descriptions; returns the symbols described (for `-protoset-out`).
    func describe(_ symbol: String?, source: inout SchemaSource, address: ServerAddress?) async throws -> [String] {
        var symbols: [String] = []
        if let symbol {
            symbols = [symbol]
        } else {
            do {
                symbols = try await source.listServices()
            } catch {
                throw classify(error, "Failed to list services", address: address)
            }
            if symbols.isEmpty { Output.write("Server returned an empty list of exposed services") }
        }
        for name in symbols {
            do {
                Output.write(try await source.describe(name))
                if messageTemplate, let type = source.pool.message(named: name) {
                    let template = MessageTemplate.make(type, pool: source.pool)
                    let json = try JSONMapping(pool: source.pool, emitDefaults: true).string(from: template)
                    Output.write("\nMessage template:\n\(json)")
                }
            } catch {
                throw classify(error, "Failed to resolve symbol \"\(name)\"", address: address)
            }
        }
        return symbols
    }
}
