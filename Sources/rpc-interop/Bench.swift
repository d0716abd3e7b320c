import ArgumentParser
import Foundation
import RocketRPC

/// `rpc-interop bench`: our client against a TestService server, unary or server-streaming,
/// with a fixed number of concurrent callers; prints one JSON line (rate, p50, p99).
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Measure client+server throughput and latency against a TestService server.")

    @Option(name: [.customLong("server-port"), .customLong("server_port")])
    var serverPort: Int

    @Option var serverHost = "127.0.0.1"

    @Option(help: "unary or streaming")
    var mode = "unary"

    @Option(help: "Total requests (unary) or messages (streaming).")
    var count = 100_000

    @Option(help: "Concurrent callers (unary) or streams (streaming).")
    var concurrency = 64

    @Option(help: "Response payload bytes.")
    var payload = 1024

    func run() async throws {
        let channel = RPCChannel(configuration: ChannelConfiguration(host: serverHost, port: serverPort))
        let client = Grpc_Testing_TestService.Client(channel: channel)
        let perCaller = max(1, count / concurrency)
        let payload = self.payload
        // Warm up the connection and the code paths.
        for _ in 0..<200 { _ = try await client.unaryCall(.init(responseSize: Int32(payload))) }

        let started = ContinuousClock.now
        let latencies = try await withThrowingTaskGroup(of: [Duration].self) { group in
            for _ in 0..<concurrency {
                group.addTask { [mode] in
                    var local: [Duration] = []
                    local.reserveCapacity(perCaller)
                    if mode == "streaming" {
                        let request = Grpc_Testing_StreamingOutputCallRequest(
                            responseParameters: Array(repeating: Grpc_Testing_ResponseParameters(size: Int32(payload)), count: perCaller))
                        local = try await client.streamingOutputCall(request) { responses in
                            var gaps: [Duration] = []
                            var last = ContinuousClock.now
                            for try await _ in responses {
                                let now = ContinuousClock.now
                                gaps.append(now - last)
                                last = now
                            }
                            return gaps
                        }
                    } else {
                        let request = Grpc_Testing_SimpleRequest(responseSize: Int32(payload))
                        for _ in 0..<perCaller {
                            let begin = ContinuousClock.now
                            _ = try await client.unaryCall(request)
                            local.append(ContinuousClock.now - begin)
                        }
                    }
                    return local
                }
            }
            var all: [Duration] = []
            for try await part in group { all += part }
            return all
        }
        let elapsed = ContinuousClock.now - started
        await channel.close()
        let sorted = latencies.sorted()
        func micros(_ d: Duration) -> Double { Double(d.components.seconds) * 1e6 + Double(d.components.attoseconds) / 1e12 }
        func percentile(_ p: Double) -> Double { sorted.isEmpty ? 0 : micros(sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]) }
        let seconds = micros(elapsed) / 1e6
        let result: [String: Any] = [
            "mode": mode, "count": sorted.count, "concurrency": concurrency, "payload": payload,
            "seconds": seconds, "rate": Double(sorted.count) / seconds,
            "p50_us": percentile(0.50), "p99_us": percentile(0.99),
        ]
        let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
        say(String(decoding: data, as: UTF8.self))
    }
}
