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
        let text: String
        do {
            text = try requestText()
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
            if format == "text" {
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
            print("\nResolved method descriptor:\n\(SchemaPrinter(pool: pool).rpc(method))\n")
            print("Request metadata to send:\n\(Self.metadataText(metadata))\n")
        }

        var options = CallOptions(metadata: metadata)
        if let deadline { options.timeout = max(.zero, deadline - ContinuousClock.now) }
        let formatter = ResponseFormatter(source: source, emitDefaults: emitDefaults, useProtoNames: keepProtoNames, text: textOutput)
        let printed = ResponseCounter()

        let outcome: DynamicInvoker.Outcome
        do {
            outcome = try await invoker.invoke(method, requests: requests, options: options) { event in
                switch event {
                case .headers(let headers):
                    if verbose { print("Response headers received:\n\(Self.metadataText(headers))\n") }
                case .response(let response):
                    let index = printed.next()
                    if verbose { print("Response contents:") }
                    // Without -v, grpcurl separates text messages with the record separator (0x1E).
                    if textOutput, !verbose, index > 1 { print("\u{1E}", terminator: "") }
                    do {
                        print(try await formatter.format(response))
                    } catch {
                        print("Failed to format response message \(index): \(ExitStatus.describe(error))")
                    }
                    if verbose { print() }
                }
            }
        } catch {
            if let status = error as? RPCError, !ExitStatus.isConnectionFailure(error) {
                // The call failed before a stream existed (for example the deadline passed while connecting).
                if verbose { print("Sent 0 requests and received 0 responses") }
                throw Exit(code: ExitStatus.code(for: status), message: await formatter.report(status))
            }
            throw classify(error, errorPrefix, address: address)
        }

        if verbose {
            print("Response trailers received:\n\(Self.metadataText(outcome.trailers))")
            let sent = outcome.requestCount, received = outcome.responses.count
            print("Sent \(sent) request\(sent == 1 ? "" : "s") and received \(received) response\(received == 1 ? "" : "s")")
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
