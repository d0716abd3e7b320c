import Dispatch
import RocketProto
import RocketRPC

/// `rocketrpc.test.Echo`: the four call kinds plus behaviour selected by the request text.
///
/// Unary `Get` understands: `fail:<code>:<message>` (throws that status), `other-error` (throws a non-RPC
/// error), `sleep` (sleeps 30 s, recording `get.cancelled` when cancelled), `outlive-call` (waits, ignoring
/// cancellation, until an `after-outlived` call started, then answers and records `get.outlived`),
/// `after-outlived` (answers once `get.outlived` was recorded), `metadata` (echoes request
/// metadata as response and trailing metadata), `gzip` (answers compressed, recording the request's
/// encoding), anything else is echoed. Client-streaming `Collect` joins the texts it received, or
/// answers a lone `x-own` with that request metadata's value.
struct EchoService: RPCService {
    static let get = MethodDescriptor(service: "rocketrpc.test.Echo", method: "Get")
    static let expand = MethodDescriptor(service: "rocketrpc.test.Echo", method: "Expand")
    static let collect = MethodDescriptor(service: "rocketrpc.test.Echo", method: "Collect")
    static let update = MethodDescriptor(service: "rocketrpc.test.Echo", method: "Update")

    let recorder: Recorder
    var serviceName: String { "rocketrpc.test.Echo" }

    struct OtherError: Error, CustomStringConvertible {
        var description: String { "something else went wrong" }
    }

    func register(into router: inout RPCRouter) {
        let recorder = self.recorder
        router.unary(Self.get) { (request: TestMessage, context: ServerContext) -> TestMessage in
            let text = request.payload.count < 200 ? request.text : ""
            // "big:N" answers with an N-byte payload.
            if text.hasPrefix("big:"), let size = Int(text.dropFirst(4)) {
                return TestMessage(payload: [UInt8](repeating: 7, count: size))
            }
            if text.hasPrefix("fail:") {
                let parts = text.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
                let code = StatusCode(rawValue: Int(parts[1]) ?? 2) ?? .unknown
                var trailers = Metadata()
                trailers.add("x-fail", "yes")
                throw RPCError(code: code, message: parts.count > 2 ? String(parts[2]) : "", metadata: trailers)
            }
            switch text {
            case "other-error":
                throw OtherError()
            case "sleep":
                recorder.bump("get.started")
                do {
                    try await Task.sleep(for: .seconds(30))
                } catch {
                    recorder.bump("get.cancelled")
                    throw error
                }
                return request
            case "outlive-call":
                // A wait that cancellation does not cut short: the handler outlives its call, and
                // answers once an `after-outlived` call is running (bounded: 5 s).
                let until = ContinuousClock.now + .seconds(5)
                while recorder.count("get.after-outlived.started") == 0, ContinuousClock.now < until {
                    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(10)) { done.resume() }
                    }
                }
                recorder.bump("get.outlived")
                return TestMessage("from a call that is over")
            case "after-outlived":
                // Still running when the `outlive-call` handler answers (bounded: 5 s).
                recorder.bump("get.after-outlived.started")
                let until = ContinuousClock.now + .seconds(5)
                while recorder.count("get.outlived") == 0, ContinuousClock.now < until { try await Task.sleep(for: .milliseconds(10)) }
                return request
            case "slow":
                try await Task.sleep(for: .milliseconds(500))
                recorder.bump("get.slow.done")
                return request
            case "deadline":
                // The time the server was given (grpc-timeout), in whole milliseconds left.
                guard let deadline = context.deadline else { return TestMessage("none") }
                let left = deadline - ContinuousClock.now
                return TestMessage(String(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000))
            case "metadata":
                var initial = Metadata()
                var trailing = Metadata()
                for (name, value) in context.requestMetadata where name.hasPrefix("x-") {
                    switch value {
                    case .string(let s):
                        initial.add(name, s)
                        trailing.add(name, s)
                    case .binary(let b):
                        initial.add(name, binary: b)
                        trailing.add(name, binary: b)
                    }
                }
                context.setResponseMetadata(initial)
                context.setTrailingMetadata(trailing)
                return TestMessage(context.peer)
            default:
                if context.requestCompression == .gzip {
                    recorder.bump("get.gzip-request")
                    context.setResponseCompression(.gzip)
                }
                return request
            }
        }

        // Request "count:size" → count messages of size bytes each (byte i % 251).
        router.serverStreaming(Self.expand) { (request: TestMessage, writer: ResponseWriter<TestMessage>, context: ServerContext) in
            let parts = request.text.split(separator: ":")
            let count = parts.count > 0 ? Int(parts[0]) ?? 0 : 0
            let size = parts.count > 1 ? Int(parts[1]) ?? 1 : 1
            // "count:size:batch[:gzip]" writes `batch` messages at a time with write(contentsOf:).
            let batch = parts.count > 2 ? max(1, Int(parts[2]) ?? 1) : 1
            if parts.count > 3, parts[3] == "gzip" {
                context.setResponseCompression(.gzip)
                if context.responseCompression == .gzip { recorder.bump("expand.gzip-response") }
            }
            func message(_ i: Int) -> TestMessage {
                var payload = [UInt8](repeating: UInt8(i % 251), count: size)
                if size >= 4 { payload.replaceSubrange(0..<4, with: withUnsafeBytes(of: UInt32(i).bigEndian, Array.init)) }
                return TestMessage(payload: payload)
            }
            var i = 0
            while i < count {
                if parts.count > 2 {
                    let group = (i..<min(count, i + batch)).map(message)
                    try await writer.write(contentsOf: group)
                    for _ in group { recorder.bump("expand.written") }
                    i += group.count
                } else {
                    try await writer.write(message(i))
                    recorder.bump("expand.written")
                    i += 1
                }
            }
            var trailers = Metadata()
            trailers.add("x-count", String(count))
            context.setTrailingMetadata(trailers)
        }

        router.clientStreaming(Self.collect) { (requests: RequestStream<TestMessage>, context: ServerContext) -> TestMessage in
            var parts: [String] = []
            for try await message in requests {
                parts.append(message.text)
            }
            // A lone "x-own" answers with the request's `x-own` metadata.
            if parts == ["x-own"] { return TestMessage(context.requestMetadata.first("x-own") ?? "(none)") }
            return TestMessage(parts.joined(separator: ","))
        }

        router.bidirectionalStreaming(Self.update) { (requests: RequestStream<TestMessage>, writer: ResponseWriter<TestMessage>, context: ServerContext) in
            for try await message in requests {
                try await writer.write(TestMessage("echo:" + message.text))
            }
        }
    }
}
