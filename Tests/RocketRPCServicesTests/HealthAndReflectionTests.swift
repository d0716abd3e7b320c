import RocketMQAPI
import RocketRPC
import RocketRPCServices
import Testing

/// In-process server on an ephemeral loopback port with health and reflection, and a channel to it.
func withServer<R>(
    _ health: HealthService,
    _ body: (RPCChannel) async throws -> R
) async throws -> R {
    let services: [any RPCService] = [health]
    let server = RPCServer(configuration: ServerConfiguration(port: 0), services: services + ServerReflection.services(describing: services))
    try await server.start()
    let channel = RPCChannel(configuration: ChannelConfiguration(host: "127.0.0.1", port: try #require(server.localPort)))
    do {
        let result = try await body(channel)
        await channel.close()
        await server.shutdown(gracePeriod: .seconds(1))
        return result
    } catch {
        await channel.close()
        await server.shutdown(gracePeriod: .seconds(1))
        throw error
    }
}

@Suite("Health service")
struct HealthServiceTests {
    @Test("check reports the server and registered services, NOT_FOUND for others")
    func checkReportsStatuses() async throws {
        let health = HealthService(serving: ["orders.Service"])
        try await withServer(health) { channel in
            let client = Grpc_Health_V1_Health.Client(channel: channel)
            #expect(try await client.check(.init()).status == .serving)
            #expect(try await client.check(.init(service: "orders.Service")).status == .serving)
            health.setStatus(.notServing, for: "orders.Service")
            #expect(try await client.check(.init(service: "orders.Service")).status == .notServing)
            let error = await #expect(throws: RPCError.self) { try await client.check(.init(service: "nope")) }
            #expect(error?.code == .notFound)
            let all = try await client.list(.init())
            #expect(all.statuses["orders.Service"]?.status == .notServing)
            #expect(all.statuses[""]?.status == .serving)
        }
    }

    @Test("watch streams the current status, then each change")
    func watchStreamsChanges() async throws {
        let health = HealthService()
        try await withServer(health) { channel in
            let client = Grpc_Health_V1_Health.Client(channel: channel)
            let seen = try await client.watch(.init(service: "late.Service")) { responses in
                var seen: [Grpc_Health_V1_HealthCheckResponse.ServingStatus] = []
                for try await response in responses {
                    seen.append(response.status)
                    switch seen.count {
                    case 1: health.setStatus(.serving, for: "late.Service")
                    case 2: health.setStatus(.notServing, for: "late.Service")
                    default: return seen
                    }
                }
                return seen
            }
            #expect(seen == [.serviceUnknown, .serving, .notServing])
        }
    }

    @Test("entering shutdown marks every service NOT_SERVING")
    func shutdownMarksNotServing() {
        let health = HealthService(serving: ["a", "b"])
        health.enterShutdown()
        #expect(health.status(of: "") == .notServing)
        #expect(health.status(of: "a") == .notServing)
        #expect(health.status(of: "b") == .notServing)
    }
}

@Suite("Server reflection")
struct ServerReflectionTests {
    typealias Request = Grpc_Reflection_V1_ServerReflectionRequest

    func ask(_ channel: RPCChannel, _ requests: [Request]) async throws -> [Grpc_Reflection_V1_ServerReflectionResponse] {
        try await Grpc_Reflection_V1_ServerReflection.Client(channel: channel).serverReflectionInfo(requests: { writer in
            for request in requests { try await writer.write(request) }
        }, handle: { responses in
            var all: [Grpc_Reflection_V1_ServerReflectionResponse] = []
            for try await response in responses { all.append(response) }
            return all
        })
    }

    @Test("lists services and answers several questions on one stream, in order")
    func answersOnOneStream() async throws {
        try await withServer(HealthService()) { channel in
            let answers = try await ask(channel, [
                Request(messageRequest: .listServices("*")),
                Request(messageRequest: .fileContainingSymbol("grpc.health.v1.Health.Check")),
                Request(messageRequest: .fileByFilename("grpc/health/v1/health.proto")),
                Request(messageRequest: .fileContainingSymbol("no.Such")),
            ])
            try #require(answers.count == 4)
            guard case .listServicesResponse(let list)? = answers[0].messageResponse else { Issue.record("no list"); return }
            #expect(list.service.map(\.name) == ["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"])
            for answer in answers[1...2] {
                guard case .fileDescriptorResponse(let files)? = answer.messageResponse else { Issue.record("no files"); continue }
                let first = try Google_Protobuf_FileDescriptorProto(serializedBytes: try #require(files.fileDescriptorProto.first))
                #expect(first.name == "grpc/health/v1/health.proto")
            }
            guard case .errorResponse(let error)? = answers[3].messageResponse else { Issue.record("no error"); return }
            #expect(error.errorCode == Int32(StatusCode.notFound.rawValue))
            #expect(answers[3].originalRequest?.messageRequest == .fileContainingSymbol("no.Such"))
        }
    }

    @Test("v1alpha answers the same as v1")
    func alphaMatchesV1() async throws {
        try await withServer(HealthService()) { channel in
            let alpha = try await Grpc_Reflection_V1alpha_ServerReflection.Client(channel: channel).serverReflectionInfo(requests: { writer in
                try await writer.write(.init(messageRequest: .fileContainingSymbol("grpc.health.v1.HealthCheckResponse.ServingStatus")))
            }, handle: { responses in
                var all: [Grpc_Reflection_V1alpha_ServerReflectionResponse] = []
                for try await response in responses { all.append(response) }
                return all
            })
            let v1 = try await ask(channel, [Request(messageRequest: .fileContainingSymbol("grpc.health.v1.HealthCheckResponse.ServingStatus"))])
            #expect(alpha.first?.serializedBytes() == v1.first?.serializedBytes())
            #expect(alpha.count == 1)
        }
    }
}
