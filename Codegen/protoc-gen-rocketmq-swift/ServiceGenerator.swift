/// Emits, per service, a namespace enum holding the method descriptors, the server protocol
/// (one async requirement per RPC, registered with `RPCRouter` by a default implementation)
/// and a typed client stub over `RPCChannel`.
struct ServiceGenerator {
    let types: TypeIndex

    func generate(_ service: ServiceDef, file: ProtoFile, into printer: inout CodePrinter) throws {
        let swiftName = Naming.packagePrefix(file.package) + Naming.typeName(service.name)
        let methods = try service.methods.map { try MethodPlan(method: $0, types: types) }

        printer.doc(service.comment)
        printer.block("public enum \(swiftName)") { p in
            p.line("/// The service's full name, as it appears in request paths and reflection.")
            p.line("public static let serviceName = \"\(service.fullName)\"")
            p.line("/// The `.proto` file that declares the service, with its imports, for reflection.")
            p.line("public static let fileDescriptor = ProtoFiles.\(FileGenerator.descriptorName(file.name))")
            p.line()
            p.block("public enum Method") { p in
                for method in methods {
                    p.line("public static let \(method.swiftName) = MethodDescriptor(service: serviceName, method: \"\(method.method.name)\")")
                }
                p.line("public static let all: [MethodDescriptor] = [\(methods.map(\.swiftName).joined(separator: ", "))]")
            }
            p.line()
            p.line("/// Implement this to serve `\(service.fullName)`; pass the value to `RPCServer`.")
            p.block("public protocol ServiceProtocol: RPCService, ProtoServiceDescribing") { p in
                for method in methods {
                    p.doc(method.method.comment)
                    p.line(method.serverRequirement)
                }
            }
            p.line()
            p.line("/// Calls `\(service.fullName)` over an `RPCChannel`.")
            p.block("public struct Client: Sendable") { p in
                p.line("public let channel: RPCChannel")
                p.line()
                p.line("public init(channel: RPCChannel) { self.channel = channel }")
                for method in methods {
                    p.line()
                    p.doc(method.method.comment)
                    method.printClientMethod(into: &p)
                }
            }
        }
        printer.line()
        printer.block("extension \(swiftName).ServiceProtocol") { p in
            p.line("public var serviceName: String { \(swiftName).serviceName }")
            p.line("public var serviceFileDescriptor: ProtoFileDescriptor { \(swiftName).fileDescriptor }")
            p.line()
            p.block("public func register(into router: inout RPCRouter)") { p in
                p.line("registerMethods(into: &router)")
            }
            p.line()
            p.line("/// Registers every method with its generated request and response types. A service that")
            p.line("/// serves a method its own way (say, reading the request bytes itself) implements")
            p.line("/// `register(into:)`: it calls this, then registers that method again, which replaces it.")
            p.block("public func registerMethods(into router: inout RPCRouter)") { p in
                for method in methods {
                    p.line(method.registration(service: swiftName))
                }
            }
        }
    }
}

private struct MethodPlan {
    let method: MethodDef
    let swiftName: String
    let input: String
    let output: String

    init(method: MethodDef, types: TypeIndex) throws {
        self.method = method
        swiftName = Naming.escaped(Naming.methodName(method.name))
        input = try types.swiftName(method.inputType)
        output = try types.swiftName(method.outputType)
    }

    var serverRequirement: String {
        switch (method.clientStreaming, method.serverStreaming) {
        case (false, false):
            return "nonisolated(nonsending) func \(swiftName)(request: \(input), context: ServerContext) async throws -> \(output)"
        case (false, true):
            return "nonisolated(nonsending) func \(swiftName)(request: \(input), response: ResponseWriter<\(output)>, context: ServerContext) async throws"
        case (true, false):
            return "nonisolated(nonsending) func \(swiftName)(requests: RequestStream<\(input)>, context: ServerContext) async throws -> \(output)"
        case (true, true):
            return "nonisolated(nonsending) func \(swiftName)(requests: RequestStream<\(input)>, response: ResponseWriter<\(output)>, context: ServerContext) async throws"
        }
    }

    func registration(service: String) -> String {
        let descriptor = "\(service).Method.\(swiftName)"
        switch (method.clientStreaming, method.serverStreaming) {
        case (false, false):
            return "router.unary(\(descriptor)) { try await self.\(swiftName)(request: $0, context: $1) }"
        case (false, true):
            return "router.serverStreaming(\(descriptor)) { try await self.\(swiftName)(request: $0, response: $1, context: $2) }"
        case (true, false):
            return "router.clientStreaming(\(descriptor)) { try await self.\(swiftName)(requests: $0, context: $1) }"
        case (true, true):
            return "router.bidirectionalStreaming(\(descriptor)) { try await self.\(swiftName)(requests: $0, response: $1, context: $2) }"
        }
    }

    func printClientMethod(into p: inout CodePrinter) {
        let descriptor = "Method.\(swiftName)"
        switch (method.clientStreaming, method.serverStreaming) {
        case (false, false):
            p.block("public func \(swiftName)(_ request: \(input), options: CallOptions = CallOptions()) async throws -> \(output)") { p in
                p.line("try await channel.unary(\(descriptor), request: request, options: options).message")
            }
        case (false, true):
            p.block("""
                public func \(swiftName)<Result: Sendable>(
                    _ request: \(input),
                    options: CallOptions = CallOptions(),
                    handle: @Sendable (ResponseStream<\(output)>) async throws -> Result
                ) async throws -> Result
                """) { p in
                p.line("try await channel.serverStreaming(\(descriptor), request: request, options: options, handle: handle)")
            }
        case (true, false):
            p.block("""
                public func \(swiftName)(
                    options: CallOptions = CallOptions(),
                    requests: @Sendable (RequestWriter<\(input)>) async throws -> Void
                ) async throws -> \(output)
                """) { p in
                p.line("try await channel.clientStreaming(\(descriptor), options: options, requests: requests).message")
            }
        case (true, true):
            p.block("""
                public func \(swiftName)<Result: Sendable>(
                    options: CallOptions = CallOptions(),
                    requests: @escaping @Sendable (RequestWriter<\(input)>) async throws -> Void,
                    handle: @Sendable (ResponseStream<\(output)>) async throws -> Result
                ) async throws -> Result
                """) { p in
                p.line("try await channel.bidirectionalStreaming(\(descriptor), options: options, requests: requests, handle: handle)")
            }
        }
    }
}
