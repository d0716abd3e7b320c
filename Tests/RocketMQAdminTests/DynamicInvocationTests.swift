import RocketMQAPI
import RocketMQTestingSchema
import RocketProto
import RocketRPC
import RocketRPCServices
import Testing

@testable import RocketMQAdmin

/// rocketmq.testing.v1.Echo implemented with the generated types: the dynamic side must interoperate
/// with code that knows the schema statically.
struct EchoService: Rocketmq_Testing_V1_Echo.ServiceProtocol {
    func unary(request: AllFields, context: ServerContext) async throws -> AllFields {
        if request.fString == "fail" { throw RPCError(code: .notFound, message: "asked to fail") }
        context.setResponseMetadata(["x-echo": request.fString])
        return request
    }

    func serverStream(request: AllFields, response: ResponseWriter<AllFields>, context: ServerContext) async throws {
        for index in 0..<3 {
            var copy = request
            copy.fInt32 = Int32(index)
            try await response.write(copy)
        }
    }

    func clientStream(requests: RequestStream<AllFields>, context: ServerContext) async throws -> AllFields {
        var summary = AllFields()
        for try await request in requests {
            summary.fInt32 += 1
            summary.rString.append(request.fString)
        }
        return summary
    }

    func bidi(requests: RequestStream<AllFields>, response: ResponseWriter<AllFields>, context: ServerContext) async throws {
        for try await request in requests {
            var copy = request
            copy.fInt64 *= 2
            try await response.write(copy)
        }
    }
}

/// An in-process server with EchoService and reflection on an ephemeral loopback port.
func withEchoServer<R>(_ body: (RPCChannel) async throws -> R) async throws -> R {
    let services: [any RPCService] = [EchoService()]
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

@Suite("Reflection client and dynamic invocation against an in-process server", .timeLimit(.minutes(1)))
struct DynamicInvocationTests {
    @Test("reflection lists services and loads a service's files with their imports")
    func reflection() async throws {
        try await withEchoServer { channel in
            let client = ReflectionClient(channel: channel)
            let services = try await client.listServices()
            #expect(services.contains("rocketmq.testing.v1.Echo"))
            var pool = DescriptorPool()
            try await client.load(symbol: "rocketmq.testing.v1.Echo", into: &pool)
            #expect(pool.message(named: "rocketmq.testing.other.v1.Label") != nil, "imports come along")
            await #expect(throws: AdminError.unknownSymbol("no.such.Service")) { try await client.load(symbol: "no.such.Service", into: &pool) }
        }
    }

    @Test("all four call kinds work with JSON in and JSON out")
    func fourCallKinds() async throws {
        try await withEchoServer { channel in
            var source = SchemaSource.reflection(ReflectionClient(channel: channel))
            _ = try await source.method("rocketmq.testing.v1.Echo/Unary")
            let invoker = DynamicInvoker(channel: channel, pool: source.pool)
            let compact = JSONMapping(pool: source.pool)

            let unary = try await invoker.invokeJSON("rocketmq.testing.v1.Echo/Unary", json: #"{"fInt64": "-5", "mBoolShade": {"true": "SHADE_DARK"}, "at": "2024-01-01T00:00:00Z"}"#, mapping: compact)
            #expect(unary.map { $0.filter { !$0.isWhitespace } } == [#"{"fInt64":"-5","mBoolShade":{"true":"SHADE_DARK"},"at":"2024-01-01T00:00:00Z"}"#])

            let streamed = try await invoker.invokeJSON("rocketmq.testing.v1.Echo/ServerStream", json: #"{"fString": "s"}"#)
            #expect(streamed.count == 3)

            let collected = try await invoker.invokeJSON("rocketmq.testing.v1.Echo/ClientStream", json: #"{"fString": "a"} {"fString": "b"}"#)
            #expect(collected.map { $0.filter { !$0.isWhitespace } } == [#"{"fInt32":2,"rString":["a","b"]}"#])

            let chatted = try await invoker.invokeJSON("rocketmq.testing.v1.Echo/Bidi", json: #"{"fInt64": 4} {"fInt64": "-1"}"#)
            #expect(chatted.map { $0.filter { !$0.isWhitespace } } == [#"{"fInt64":"8"}"#, #"{"fInt64":"-2"}"#])
        }
    }

    @Test("headers, trailers and a non-OK status come back in the outcome")
    func outcome() async throws {
        try await withEchoServer { channel in
            var source = SchemaSource.reflection(ReflectionClient(channel: channel))
            let method = try await source.method("rocketmq.testing.v1.Echo.Unary")
            let invoker = DynamicInvoker(channel: channel, pool: source.pool)
            let mapping = JSONMapping(pool: source.pool)
            let ok = try await invoker.invoke(method, requests: invoker.parseRequests(#"{"fString": "hi"}"#, for: method, mapping: mapping))
            #expect(ok.error == nil && ok.headers.first("x-echo") == "hi" && ok.responses.count == 1)

            let failed = try await invoker.invoke(method, requests: invoker.parseRequests(#"{"fString": "fail"}"#, for: method, mapping: mapping))
            #expect(failed.error?.code == .notFound && failed.error?.message == "asked to fail" && failed.responses.isEmpty)

            await #expect(throws: RPCError.self) { _ = try await invoker.invokeJSON("rocketmq.testing.v1.Echo/Unary", json: #"{"fString": "fail"}"#) }
            await #expect(throws: AdminError.unknownMethod(service: "rocketmq.testing.v1.Echo", method: "Nope")) { _ = try await source.method("rocketmq.testing.v1.Echo/Nope") }
            await #expect(throws: AdminError.unknownService("rocketmq.testing.v1.Nope")) { _ = try await source.method("rocketmq.testing.v1.Nope/Unary") }
        }
    }
}
