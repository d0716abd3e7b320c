import Testing
import Logging
import NIOCore
import RocketRPC

/// A started server with the echo service and a channel to it; shut both down with `stop()`.
struct TestHarness {
    let server: RPCServer
    let channel: RPCChannel
    let recorder: Recorder
    let port: Int

    static func start(
        eventLoopGroup: (any EventLoopGroup)? = nil,
        extraServices: [any RPCService] = [],
        server configure: (inout ServerConfiguration) -> Void = { _ in },
        channel configureChannel: (inout ChannelConfiguration) -> Void = { _ in }
    ) async throws -> TestHarness {
        let recorder = Recorder()
        var configuration = ServerConfiguration(host: "127.0.0.1", port: 0)
        configure(&configuration)
        var logger = Logger(label: "rocketrpc.test")
        logger.logLevel = .warning
        let server = RPCServer(configuration: configuration, services: [EchoService(recorder: recorder)] + extraServices, eventLoopGroup: eventLoopGroup, logger: logger)
        try await server.start()
        let port = try #require(server.localPort)
        var channelConfiguration = ChannelConfiguration(host: "127.0.0.1", port: port)
        configureChannel(&channelConfiguration)
        let channel = RPCChannel(configuration: channelConfiguration, logger: logger)
        return TestHarness(server: server, channel: channel, recorder: recorder, port: port)
    }

    func stop() async {
        await channel.close()
        await server.shutdown(gracePeriod: .seconds(1))
    }
}
