import Foundation
import RocketMQAdmin
import RocketRPC

extension MQAdmin {
    /// Invokes one method and prints as grpcurl does; a non-OK status ends with exit 64 + code.
    func invoke(_ methodName: String, source: inout SchemaSource, channel: RPCChannel, address: ServerAddress, metadata: Metadata, deadline: ContinuousClock.Instant?) async throws {
        let errorPrefix = "Error invoking method \"\(methodName)\""
        let method: ServiceDescriptor.Method
        do {
            method = try await source.method(methodName)
        } catch {
            throw classify(error, errorPrefix, address: address)
        }
        // Streaming calls fed from stdin send each request as soon as it is complete (as grpcurl does);
        // everything else reads its data first.
        let streamsStdin = data == "@" && method.clientStreaming && format == "json"
        let text: String
        do {
            text = streamsStdin ? "" : try requestText()
        } catch {
            throw Exit(code: ExitStatus.failure, message: "\(errorPrefix): error getting request data: \(ExitStatus.describe(error))\n")
        }
        if format == "json", source.reflection != nil {
            // Any payload types in the request may live in files the method's file does not import.
            var parser = JSONParser(text)
            while let document = try? parser.next() {
                for name in document.anyTypeNames { _ = await source.loadType(name) }
            }
        }
        let pool = source.pool
        let mapping = JSONMapping(pool: pool, emitDefaults: emitDefaults, useProtoNames: keepProtoNames, ignoreUnknownFields: allowUnknownFields)
        let invoker = DynamicInvoker(channel: channel, pool: pool)

        let requests: [DynamicMessage]
        do {
            if streamsStdin {
                requests = []  // read while the call runs
            } else if format == "text" {
                let requestType = try invoker.types(of: method).request
                requests = try TextFormatParser.parseStream(text, as: requestType, pool: pool)
            } else {
                requests = try invoker.parseRequests(text, for: method, mapping: mapping)
            }
        } catch {
            throw Exit(code: ExitStatus.failure, message: "\(errorPrefix): error getting request data: \(ExitStatus.describe(error))\n")
        }

        let verbose = self.verbose || veryVerbose
        let textOutput = format == "text"
        if verbose {
            Output.write("\nResolved method descriptor:\n\(SchemaPrinter(pool: pool).rpc(method))\n")
            Output.write("Request metadata to send:\n\(Self.metadataText(metadata))\n")
        }

        var options = CallOptions(metadata: metadata)
        if let deadline { options.timeout = max(.zero, deadline - ContinuousClock.now) }
        let formatter = ResponseFormatter(source: source, emitDefaults: emitDefaults, useProtoNames: keepProtoNames, text: textOutput)
        let printed = ResponseCounter()

        let onEvent: @Sendable (DynamicInvoker.Event) async throws -> Void = { event in
            switch event {
            case .headers(let headers):
                if verbose { Output.write("Response headers received:\n\(Self.metadataText(headers))\n") }
            case .response(let response):
                let index = printed.next()
                if verbose { Output.write("Response contents:") }
                // Without -v, grpcurl separates text messages with the record separator (0x1E).
                if textOutput, !verbose, index > 1 { Output.write("\u{1E}", terminator: "") }
                do {
                    Output.write(try await formatter.format(response))
                } catch {
                    Output.write("Failed to format response message \(index): \(ExitStatus.describe(error))")
                }
                if verbose { Output.write() }
            }
        }
        let outcome: DynamicInvoker.Outcome
        do {
            if streamsStdin {
                let requestType = try invoker.types(of: method).request
                outcome = try await invoker.invoke(method, options: options, requests: { writer in
                    var splitter = JSONStreamSplitter()
                    func send(_ document: String) async throws {
                        let request: DynamicMessage
                        do {
                            request = try mapping.decode(JSONParser.parse(document), as: requestType)
                        } catch {
                            throw RequestDataError(underlying: error)
                        }
                        try await writer.write(request)
                    }
                    for await chunk in StandardInput.chunks() {
                        for document in splitter.append(chunk) { try await send(document) }
                    }
                    if let rest = splitter.finish() { try await send(rest) }
                }, onEvent: onEvent)
            } else {
                outcome = try await invoker.invoke(method, requests: requests, options: options, onEvent: onEvent)
            }
        } catch let failure as RequestDataError {
            throw Exit(code: ExitStatus.failure, message: "\(errorPrefix): error getting request data: \(ExitStatus.describe(failure.underlying))\n")
        } catch {
            if let status = error as? RPCError, !ExitStatus.isConnectionFailure(error) {
                // The call failed before a stream existed (for example the deadline passed while connecting).
                if verbose { Output.write("Sent 0 requests and received 0 responses") }
                throw Exit(code: ExitStatus.code(for: status), message: await formatter.report(status))
            }
            throw classify(error, errorPrefix, address: address)
        }

        if verbose {
            Output.write("Response trailers received:\n\(Self.metadataText(outcome.trailers))")
            let sent = outcome.requestCount, received = outcome.responses.count
            Output.write("Sent \(sent) request\(sent == 1 ? "" : "s") and received \(received) response\(received == 1 ? "" : "s")")
        }
        if let status = outcome.error {
            if ExitStatus.isConnectionFailure(status) { throw classify(status, errorPrefix, address: address) }
            throw Exit(code: ExitStatus.code(for: status), message: await formatter.report(status))
        }
    }

    /// The `-d` data: inline, or all of stdin for `-d @`; empty when `-d` is absent.
    func requestText() throws -> String {
        guard let data else { return "" }
        guard data == "@" else { return data }
        let bytes = FileHandle.standardInput.readDataToEndOfFile()
        return String(decoding: bytes, as: UTF8.self)
    }

    /// grpcurl's metadata listing: `(empty)` or sorted `name: value` lines.
    static func metadataText(_ metadata: Metadata) -> String {
        let lines = metadata.map { "\($0.name): \($0.value)" }.sorted()
        return lines.isEmpty ? "(empty)" : lines.joined(separator: "\n")
    }
}
