import Foundation
import RocketRPC
import Testing

@Suite("Interop with Python grpcio", .serialized, .timeLimit(.minutes(1)), .enabled(if: PythonPeer.isAvailable))
struct PythonInteropTests {
    static let get = MethodDescriptor(service: "interop.Echo", method: "Get")
    static let expand = MethodDescriptor(service: "interop.Echo", method: "Expand")
    static let update = MethodDescriptor(service: "interop.Echo", method: "Update")

    @Test func ourClientCallsAGrpcioServer() async throws {
        let script = try PythonPeer.writeScript(PythonPeer.serverScript)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script]
        let stdin = Pipe()
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        try process.run()
        defer {
            try? stdin.fileHandleForWriting.close()
            process.terminate()
        }
        let portLine = await offPool { () -> String in
            var line = Data()
            while true {
                let byte = stdout.fileHandleForReading.readData(ofLength: 1)
                if byte.isEmpty || byte == Data([0x0A]) { break }
                line.append(byte)
            }
            return String(decoding: line, as: UTF8.self)
        }
        let port = try #require(Int(portLine))
        let channel = RPCChannel(configuration: ChannelConfiguration(host: "127.0.0.1", port: port))

        var options = CallOptions(timeout: .seconds(10))
        options.metadata.add("x-echo", "ping")
        let unary: UnaryResponse<TestMessage> = try await channel.unary(Self.get, request: TestMessage("hello"), options: options)
        #expect(unary.message.text == "hello")
        #expect(unary.initialMetadata.first("x-echo") == "ping")

        let error = await #expect(throws: RPCError.self) {
            let _: UnaryResponse<TestMessage> = try await channel.unary(Self.get, request: TestMessage("fail"), options: CallOptions(timeout: .seconds(10)))
        }
        #expect(error?.code == .failedPrecondition)
        #expect(error?.message == "no way ☺ 😈 100%")
        #expect(error?.metadata.first("x-trailer") == "t")
        #expect(error?.metadata.firstBinary("x-trailer-bin") == [0, 1, 0xFF])

        let streamed = try await channel.serverStreaming(Self.expand, request: TestMessage("s"), options: CallOptions(timeout: .seconds(10))) { (stream: ResponseStream<TestMessage>) in
            var texts: [String] = []
            for try await m in stream { texts.append(m.text) }
            return texts
        }
        #expect(streamed == Array(repeating: "s", count: 5))

        let echoed = try await channel.bidirectionalStreaming(
            Self.update, options: CallOptions(timeout: .seconds(10), compression: .gzip),
            requests: { (writer: RequestWriter<TestMessage>) in
                for i in 0..<10 { try await writer.write(TestMessage("m\(i)")) }
            },
            handle: { (stream: ResponseStream<TestMessage>) in
                var texts: [String] = []
                for try await m in stream { texts.append(m.text) }
                return texts
            }
        )
        #expect(echoed == (0..<10).map { "m\($0)" })

        let big = TestMessage(payload: Array(repeating: 5, count: 3 * 1024 * 1024))
        let bigResponse: UnaryResponse<TestMessage> = try await channel.unary(Self.get, request: big, options: CallOptions(timeout: .seconds(20)))
        #expect(bigResponse.message.payload.count == big.payload.count)
        await channel.close()
    }

    @Test func grpcioClientCallsOurServer() async throws {
        let h = try await TestHarness.start()
        let script = try PythonPeer.writeScript(PythonPeer.clientScript)
        let port = h.port
        let (status, output) = await offPool { () -> (Int32, String) in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", script, String(port)]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            do { try process.run() } catch { return (-1, "\(error)") }
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: data, as: UTF8.self))
        }
        #expect(status == 0, "\(output)")
        for check in ["unary", "metadata", "status", "server streaming", "client streaming", "bidi", "gzip", "unimplemented", "deadline"] {
            #expect(output.contains("\(check) ok"), "\(output)")
        }
        await h.stop()
    }
}
