import RocketMQAPI
import RocketProto
import RocketRPC
import Synchronization

/// Asks a server for its schema over gRPC server reflection (`grpc.reflection.v1`, falling back to
/// `v1alpha` for servers that only have the older one).
///
/// Each question is one short bidirectional call (one request, one answer), so nothing stays open
/// between questions. Sendable; safe to use from several tasks. RPC failures surface as the
/// `RPCError` of the call; an error answer from the server as ``AdminError``.
public struct ReflectionClient: Sendable {
    /// The channel to the server.
    public let channel: RPCChannel
    /// Metadata sent with every reflection call (grpcurl's `-H` applies here too).
    public var metadata: Metadata
    /// Calls fail with `DEADLINE_EXCEEDED` after this instant.
    public var deadline: ContinuousClock.Instant?

    private static let services = ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]
    private let preferredVersion = VersionChoice()

    /// A client asking over `channel` (which the caller owns and closes).
    public init(channel: RPCChannel, metadata: Metadata = [:], deadline: ContinuousClock.Instant? = nil) {
        self.channel = channel
        self.metadata = metadata
        self.deadline = deadline
    }

    /// The names of the services the server exposes, sorted.
    public func listServices() async throws -> [String] {
        let response = try await ask(.init(messageRequest: .listServices("")))
        switch response.messageResponse {
        case .listServicesResponse(let list)?: return list.service.map(\.name).sorted()
        case .errorResponse(let error)?: throw AdminError.reflection("list services: \(error.errorMessage) (code \(error.errorCode))")
        default: throw AdminError.reflection("unexpected answer to list services")
        }
    }

    /// The file declaring `symbol` (a service, method, message, enum or field name) and every file it
    /// imports, directly or not.
    /// - Throws: ``AdminError/unknownSymbol(_:)`` when the server does not know the symbol.
    public func filesContaining(symbol: String, known: DescriptorPool? = nil) async throws -> [Google_Protobuf_FileDescriptorProto] {
        let response = try await ask(.init(messageRequest: .fileContainingSymbol(DescriptorPool.trim(symbol))))
        let files = try Self.files(in: response, notFound: .unknownSymbol(symbol))
        return try await completing(files, known: known)
    }

    /// Adds the files declaring `symbol` (with their imports) to `pool`.
    public func load(symbol: String, into pool: inout DescriptorPool) async throws {
        let files = try await filesContaining(symbol: symbol, known: pool)
        try pool.add(files)
    }

    /// A pool with the files declaring every service the server lists.
    public func poolOfAllServices() async throws -> DescriptorPool {
        var pool = DescriptorPool()
        for service in try await listServices() where pool.service(named: service) == nil {
            try await load(symbol: service, into: &pool)
        }
        return pool
    }

    /// Fetches, by file name, any import that neither `files` nor `known` holds (servers differ in
    /// whether they send the transitive closure themselves).
    private func completing(_ files: [Google_Protobuf_FileDescriptorProto], known: DescriptorPool?) async throws -> [Google_Protobuf_FileDescriptorProto] {
        var result = files
        var have = Set(files.compactMap(\.name))
        var missing = files.flatMap(\.dependency).filter { !have.contains($0) && !(known?.containsFile(named: $0) ?? false) }
        while let name = missing.popLast() {
            guard !have.contains(name) else { continue }
            let response = try await ask(.init(messageRequest: .fileByFilename(name)))
            for file in try Self.files(in: response, notFound: .reflection("the server does not have file \(name), which its other files import")) {
                guard let fileName = file.name, have.insert(fileName).inserted else { continue }
                result.append(file)
                missing += file.dependency.filter { !have.contains($0) && !(known?.containsFile(named: $0) ?? false) }
            }
        }
        return result
    }

    private static func files(in response: Grpc_Reflection_V1_ServerReflectionResponse, notFound: AdminError) throws -> [Google_Protobuf_FileDescriptorProto] {
        switch response.messageResponse {
        case .fileDescriptorResponse(let answer)?:
            return try answer.fileDescriptorProto.map { bytes in
                do {
                    return try Google_Protobuf_FileDescriptorProto(serializedBytes: bytes)
                } catch {
                    throw AdminError.reflection("the server sent a file descriptor that does not decode: \(error)")
                }
            }
        case .errorResponse(let error)?:
            if error.errorCode == Int32(StatusCode.notFound.rawValue) { throw notFound }
            throw AdminError.reflection("\(error.errorMessage) (code \(error.errorCode))")
        default:
            throw AdminError.reflection("unexpected answer to a file request")
        }
    }

    /// One request, one answer. v1 and v1alpha messages are identical on the wire, so both are sent
    /// as the v1 types' bytes.
    private func ask(_ request: Grpc_Reflection_V1_ServerReflectionRequest) async throws -> Grpc_Reflection_V1_ServerReflectionResponse {
        var options = CallOptions(metadata: metadata)
        if let deadline { options.timeout = max(.zero, deadline - ContinuousClock.now) }
        let start = preferredVersion.index
        for index in start..<Self.services.count {
            let method = MethodDescriptor(service: Self.services[index], method: "ServerReflectionInfo")
            let requestBytes = RawMessage(bytes: request.serializedBytes())
            do {
                let answer: RawMessage = try await channel.bidirectionalStreaming(
                    method, options: options,
                    requests: { writer in try await writer.write(requestBytes) },
                    handle: { (responses: ResponseStream<RawMessage>) in
                        for try await response in responses { return response }
                        throw AdminError.reflection("the server ended the reflection stream without answering")
                    }
                )
                preferredVersion.index = index
                do {
                    return try Grpc_Reflection_V1_ServerReflectionResponse(serializedBytes: answer.bytes)
                } catch {
                    throw AdminError.reflection("the answer does not decode: \(error)")
                }
            } catch let error as RPCError where error.code == .unimplemented {
                continue
            }
        }
        // Neither version answered: say so in grpcurl's words rather than as a bare UNIMPLEMENTED.
        throw AdminError.reflection("server does not support the reflection API")
    }
}

/// Remembers which reflection version answered, so later questions go straight to it.
private final class VersionChoice: Sendable {
    private let stored = Mutex(0)

    var index: Int {
        get { stored.withLock { $0 } }
        set { stored.withLock { $0 = newValue } }
    }
}
