import Foundation
import Hummingbird
import Logging
import RocketMQAPI
import RocketMQAdmin
import RocketRPC
import ServiceLifecycle

/// The web console: read-only pages on a broker's state, rendered on the server from its Admin
/// service (`rocketmq.admin.v1.Admin`): overview and status, the cluster's brokers (from the
/// NameServers the broker registers with), topics with their queues, consumer groups with their
/// lag, message lookup by id or key with the message's trace, and the configuration. Any page
/// shows another broker of the cluster with `?broker=host:port`.
///
/// A ServiceLifecycle `Service`: run it in a `ServiceGroup` (`mqbroker --dev` does, next to the
/// broker). Every page is one or a few Admin calls made when it is asked for; the console keeps
/// no state of its own beyond one gRPC channel per broker address.
public struct Console: Service {
    let configuration: ConsoleConfiguration
    let logger: Logger
    let onStarted: @Sendable (Int) -> Void
    private let channels = ChannelCache()

    /// - Parameter onStarted: called with the bound port once the console listens.
    public init(configuration: ConsoleConfiguration, logger: Logger = Logger(label: "rocketmq.console"), onStarted: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.configuration = configuration
        self.logger = logger
        self.onStarted = onStarted
    }

    public func run() async throws {
        let router = Router()
        router.add(middleware: LoopbackHostCheck())
        // Every page takes `?broker=host:port`: another broker of the cluster (one the
        // NameServers list), read through its Admin service; without it, the console's own.
        router.get("/") { request, _ in await render(request) { try await overview($0) } }
        router.get("/topics") { request, _ in await render(request) { try await topics($0) } }
        router.get("/topics/:name") { request, context in
            let name = Self.pathParameter(context.parameters.get("name"))
            return await render(request) { try await topic(name, $0) }
        }
        router.get("/groups") { request, _ in await render(request) { try await groups($0) } }
        router.get("/groups/:name") { request, context in
            let name = Self.pathParameter(context.parameters.get("name"))
            return await render(request) { try await group(name, $0) }
        }
        router.get("/messages") { request, _ in
            let query = Self.formFields(request.uri.query ?? "")
            return await render(request) { try await messages(topic: query["topic"] ?? "", id: query["id"] ?? "", key: query["key"] ?? "", $0) }
        }
        router.get("/config") { request, _ in await render(request) { try await config($0) } }
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "rocketmq-console"),
            onServerRunning: { [onStarted] channel in onStarted(channel.localAddress?.port ?? 0) },
            logger: logger)
        do {
            // `run()`, not `runService()`: the service group the console is in (the broker's)
            // owns the signals and the order of shutdown; the console follows its graceful
            // shutdown instead of handling SIGTERM on its own.
            try await app.run()
        } catch {
            // A console that cannot listen (its port taken, say) must not take the broker it
            // runs beside down with it: it says why and stays out of the way until shutdown.
            logger.error("the console is not serving", metadata: ["port": "\(configuration.port)", "error": "\(error)"])
            try? await gracefulShutdown()
        }
        await channels.closeAll()
    }

    // MARK: Pages

    private func overview(_ admin: Rocketmq_Admin_V1_Admin.Client) async throws -> String {
        let status = try await admin.getBrokerStatus(.init(), options: Self.callOptions)
        let topics = try await admin.listTopics(.init(), options: Self.callOptions).topics.filter { !Self.isSystem($0.name) }
        let groups = try await admin.listGroups(.init(), options: Self.callOptions).groups
        var lag: [String: Int64] = [:]
        for group in groups {
            // A group deleted since the list was read shows no lag; the page still renders.
            lag[group.name] = try? await admin.getConsumerProgress(.init(group: group.name, topic: ""), options: Self.callOptions).totalLag
        }
        let replication = try await admin.getReplicationStatus(.init(), options: Self.callOptions)
        let rows: [[String]] = [
            ["Cluster", escaped(status.clusterName)], ["Broker", escaped("\(status.brokerName) (id \(status.brokerId))")],
            ["Role", escaped(replication.role)],
            ["Address", escaped(status.address)], ["NameServers", escaped(status.nameServers.joined(separator: ", "))],
            ["Started", escaped(status.startedAt.map { Self.time($0) } ?? "")], ["Flush", escaped(status.flushMode)],
            ["CommitLog", "\(status.commitLogMinOffset) – \(status.commitLogMaxOffset) (flushed \(status.commitLogFlushedOffset))"],
            ["Topics / groups / clients", "\(status.topicCount) / \(status.groupCount) / \(status.clientCount)"],
            ["Open transactions", "\(status.openTransactions)"],
            ["Delay messages pending", "\(status.pendingDelayMessages)"],
        ]
        let body = table(["", ""], rows)
            + replicationSection(replication)
            + (try await clusterSection(status))
            + "<h2>Topics</h2>" + topicTable(topics)
            + "<h2>Consumer groups</h2>" + table(["Group", "FIFO", "Max attempts", "Consuming", "Lag"], groups.map { group in
                [link("/groups/", group.name), group.fifo ? "yes" : "no", "\(group.maxDeliveryAttempts)",
                 group.consumeEnabled ? "yes" : "no", lag[group.name].map { "\($0)" } ?? "–"]
            }, numeric: [2, 4])
        return page(title: "Broker \(status.brokerName)", body: body)
    }

    /// A master's slaves and their lag, or a slave's master and how far behind it is.
    private func replicationSection(_ r: Rocketmq_Admin_V1_ReplicationStatus) -> String {
        var html = "<h2>Replication</h2>"
        if r.role == "SLAVE" {
            let state = r.connected ? "following" : "not connected" + (r.lastError.isEmpty ? "" : ": " + r.lastError)
            html += table(["Master", "State", "Lag (bytes)"], [[escaped(r.masterAddress.isEmpty ? "–" : r.masterAddress), escaped(state), "\(r.lagBytes)"]], numeric: [2])
        } else if r.replicas.isEmpty {
            html += "<p>No slave follows this broker.</p>"
        } else {
            html += table(["Slave", "Id", "Acknowledged offset", "Lag (bytes)", "Last acknowledged"], r.replicas.map { replica in
                [escaped(replica.address), "\(replica.brokerId)", "\(replica.acknowledgedOffset)", "\(replica.lagBytes)",
                 escaped(replica.lastAcknowledgedAt.map { Self.time($0) } ?? "")]
            }, numeric: [1, 2, 3])
        }
        if !r.failover.isEmpty { html += "<p>Failover: \(escaped(r.failover))</p>" }
        if !r.writesRefused.isEmpty { html += "<p><strong>Takes no writes:</strong> \(escaped(r.writesRefused))</p>" }
        return html
    }

    private func topics(_ admin: Rocketmq_Admin_V1_Admin.Client) async throws -> String {
        let topics = try await admin.listTopics(.init(), options: Self.callOptions).topics
        return page(title: "Topics", body: topicTable(topics.filter { !Self.isSystem($0.name) })
            + "<h2>System topics</h2>" + topicTable(topics.filter { Self.isSystem($0.name) }))
    }

    private func topic(_ name: String, _ admin: Rocketmq_Admin_V1_Admin.Client) async throws -> String {
        let described = try await admin.describeTopic(.init(topic: name), options: Self.callOptions)
        let topic = described.topic ?? .init()
        let total = described.queues.reduce(Int64(0)) { $0 + $1.maxOffset - $1.minOffset }
        let body = "<p>\(Self.queues(topic)) queues, permission \(Self.permission(topic.permission)), message types \(escaped(topic.messageTypes.joined(separator: ", "))); \(total) messages stored.</p>"
            + table(["Queue", "Min offset", "Max offset", "Last stored"], described.queues.map { queue in
                ["\(queue.queueId)", "\(queue.minOffset)", "\(queue.maxOffset)", escaped(queue.lastStoreTime.map { Self.time($0) } ?? "")]
            }, numeric: [0, 1, 2])
            + "<p><a href=\"\(href("/messages?topic=\(queryEncoded(name))"))\">Look up its messages</a></p>"
        return page(title: "Topic \(name)", body: body)
    }

    private func groups(_ admin: Rocketmq_Admin_V1_Admin.Client) async throws -> String {
        let groups = try await admin.listGroups(.init(), options: Self.callOptions).groups
        return page(title: "Consumer groups", body: table(["Group", "FIFO", "Max attempts", "Consuming"], groups.map { group in
            [link("/groups/", group.name), group.fifo ? "yes" : "no", "\(group.maxDeliveryAttempts)", group.consumeEnabled ? "yes" : "no"]
        }, numeric: [2]))
    }

    private func group(_ name: String, _ admin: Rocketmq_Admin_V1_Admin.Client) async throws -> String {
        let progress = try await admin.getConsumerProgress(.init(group: name, topic: ""), options: Self.callOptions)
        let body = "<p>Total lag: \(progress.totalLag) messages.</p>"
            + table(["Topic", "Queue", "Broker offset", "Consumer offset", "Lag", "In flight"], progress.queues.map { queue in
                [link("/topics/", queue.topic), "\(queue.queueId)", "\(queue.brokerOffset)", "\(queue.consumerOffset)", "\(queue.lag)", "\(queue.inFlight)"]
            }, numeric: [1, 2, 3, 4, 5])
        return page(title: "Group \(name)", body: body)
    }

    private func messages(topic: String, id: String, key: String, _ admin: Rocketmq_Admin_V1_Admin.Client) async throws -> String {
        var body = """
            <form method="get" action="/messages">\(ConsoleRequest.broker.map { "<input type=\"hidden\" name=\"broker\" value=\"\(escaped($0))\">" } ?? "")
            Topic <input name="topic" value="\(escaped(topic))"> Message id <input name="id" value="\(escaped(id))" size="34">
            or key <input name="key" value="\(escaped(key))"> <button>Look up</button></form>
            """
        guard !id.isEmpty || (!key.isEmpty && !topic.isEmpty) else {
            return page(title: "Messages", body: body + "<p>Give a message id, or a topic and a key.</p>")
        }
        var request = Rocketmq_Admin_V1_QueryMessageRequest()
        request.topic = topic
        request.maxCount = 32
        request.by = id.isEmpty ? .key(key) : .messageId(id)
        let found: [Rocketmq_Admin_V1_StoredMessage]
        do {
            found = try await admin.queryMessage(request, options: Self.callOptions).messages
        } catch let error as RPCError where error.code == .notFound {
            found = []
        }
        let rows = found.map { message -> [String] in
            let stored = message.storeTime.map { Self.time($0) } ?? ""
            let born = (message.bornTime.map { Self.time($0) } ?? "") + (message.bornHost.isEmpty ? "" : " from \(message.bornHost)")
            let properties = message.properties.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\n")
            return [
                "<a href=\"\(href("/messages?id=\(queryEncoded(message.messageId))"))\">\(escaped(message.messageId))</a>",
                link("/topics/", message.topic), "\(message.queueId)", "\(message.queueOffset)",
                escaped(born), escaped(stored), "<pre>" + escaped(properties) + "</pre>", "<pre>" + escaped(Self.preview(message.body)) + "</pre>",
            ]
        }
        body += found.isEmpty ? "<p>No message found.</p>" : table(["Message id", "Topic", "Queue", "Offset", "Sent", "Stored", "Properties", "Body"], rows, numeric: [2, 3])
        if !id.isEmpty, !found.isEmpty {
            body += try await trace(id, admin)
        }
        return page(title: "Messages", body: body)
    }

    /// The message's trace: its stored copies and what each consumer group did with it.
    private func trace(_ id: String, _ admin: Rocketmq_Admin_V1_Admin.Client) async throws -> String {
        let trace: Rocketmq_Admin_V1_MessageTrace
        do {
            trace = try await admin.getMessageTrace(.init(messageId: id), options: Self.callOptions)
        } catch let error as RPCError where error.code == .notFound {
            return ""
        } catch {
            // The lookup above worked: a broker without traces (an older version) or a slow
            // scan costs the trace section, not the page.
            return "<h2>Trace</h2><p class=\"error\">No trace: \(escaped("\(error)"))</p>"
        }
        let rows = trace.events.map { event -> [String] in
            [escaped(event.time?.iso8601Milliseconds ?? ""), Self.describe(event.kind), event.group.isEmpty ? "" : link("/groups/", event.group),
             link("/topics/", event.topic), "\(event.queueId)", "\(event.queueOffset)", event.kind == .delivered ? "\(event.attempt)" : ""]
        }
        var html = "<h2>Trace</h2>" + table(["Time", "Event", "Group", "Topic", "Queue", "Offset", "Attempt"], rows, numeric: [4, 5, 6])
        if trace.truncated {
            html += "<p class=\"error\">The consumer-progress journal was read for \(trace.journalRecordsScanned) records only: later events may be missing.</p>"
        }
        return html
    }

    private static func describe(_ kind: Rocketmq_Admin_V1_TraceEvent.Kind) -> String {
        switch kind {
        case .stored: "stored"
        case .delivered: "delivered"
        case .acked: "acknowledged"
        case .offsetPassed: "offset moved past it"
        case .offsetReset: "offset reset before it"
        case .deadLettered: "moved to the dead-letter queue"
        default: "unknown"
        }
    }

    private func config(_ admin: Rocketmq_Admin_V1_Admin.Client) async throws -> String {
        let config = try await admin.getBrokerConfig(.init(), options: Self.callOptions)
        let updatable = Set(config.updatableKeys)
        return page(title: "Configuration", body: table(["Key", "Value", "Changeable at run time"], config.values.sorted { $0.key < $1.key }.map {
            [escaped($0.key), escaped($0.value), updatable.contains($0.key) ? "yes (mqadmin updateBrokerConfig)" : ""]
        }) )
    }

    // MARK: Helpers

    private func topicTable(_ topics: [Rocketmq_Admin_V1_Topic]) -> String {
        table(["Topic", "Queues", "Permission", "Message types"], topics.sorted { $0.name < $1.name }.map { topic in
            [link("/topics/", topic.name), Self.queues(topic), Self.permission(topic.permission), escaped(topic.messageTypes.joined(separator: ", "))]
        })
    }

    /// `8`, or `8 (read 8, write 4)` when the read and write queue counts differ.
    private static func queues(_ topic: Rocketmq_Admin_V1_Topic) -> String {
        topic.readQueues == topic.writeQueues ? "\(topic.queueCount)" : "\(topic.queueCount) (read \(topic.readQueues), write \(topic.writeQueues))"
    }

    private func link(_ base: String, _ name: String) -> String {
        "<a href=\"\(href(base + queryEncoded(name)))\">\(escaped(name))</a>"
    }

    /// The brokers the NameServers of the shown broker list, each a link to its own pages;
    /// nothing for a broker that registers with none.
    private func clusterSection(_ status: Rocketmq_Admin_V1_BrokerStatus) async throws -> String {
        guard !status.nameServers.isEmpty else { return "" }
        let brokers = await clusterBrokers(nameServers: status.nameServers)
        guard !brokers.isEmpty else { return "<h2>Cluster</h2><p class=\"error\">No NameServer of \(escaped(status.nameServers.joined(separator: ", "))) answered.</p>" }
        let rows = brokers.map { broker -> [String] in
            let address = broker.endpoints.first ?? ""
            let shown = address == status.address ? "\(escaped(address)) (shown)" : "<a href=\"/?broker=\(queryEncoded(address))\">\(escaped(address))</a>"
            return [escaped(broker.cluster), escaped(broker.brokerName), "\(broker.brokerID)", broker.role == .slave ? "slave" : "master", shown,
                    "\(broker.topicCount)", escaped(broker.lastHeartbeat.map { Self.time($0) } ?? "")]
        }
        return "<h2>Cluster</h2>" + table(["Cluster", "Broker", "Id", "Role", "Address", "Topics", "Last heartbeat"], rows, numeric: [2, 5])
    }

    /// A live broker as a NameServer lists it, with its cluster's name.
    private struct ClusterBroker {
        var cluster: String
        var brokerName: String
        var brokerID: Int64
        var role: Rocketmq_Namesrv_V1_BrokerRole
        var endpoints: [String]
        var topicCount: Int32
        var lastHeartbeat: Google_Protobuf_Timestamp?
    }

    /// The brokers of the first of `nameServers` that answers (they all hold the same registry).
    private func clusterBrokers(nameServers: [String]) async -> [ClusterBroker] {
        for server in nameServers {
            guard let address = ServerAddress(parsing: server) else { continue }
            let channel = await channels.channel(for: address)
            guard let info = try? await Rocketmq_Namesrv_V1_NameServer.Client(channel: channel).getClusterInfo(.init(), options: Self.callOptions) else { continue }
            return info.clusters.flatMap { cluster in
                cluster.brokers.map {
                    ClusterBroker(cluster: cluster.name, brokerName: $0.brokerName, brokerID: $0.brokerId, role: $0.role,
                                  endpoints: $0.endpoints, topicCount: $0.topicCount, lastHeartbeat: $0.lastHeartbeat)
                }
            }
        }
        return []
    }

    /// Runs `body` with an Admin client for the broker `request` asks for (`?broker=`, which must
    /// be one the NameServers list: the console calls no address a page names otherwise) or the
    /// configured one, and answers with its page, or with an error page: 503 while the broker's
    /// address is not known, 404 for a broker not in the cluster, 502 when it fails.
    private func render(_ request: Request, _ body: (Rocketmq_Admin_V1_Admin.Client) async throws -> String) async -> Response {
        guard let own = configuration.broker() else {
            return Self.html(page(title: "Broker not ready", body: "<p class=\"error\">The broker has not started yet.</p>"), status: .serviceUnavailable)
        }
        var address = own
        let asked = Self.formFields(request.uri.query ?? "")["broker"].flatMap { $0.isEmpty ? nil : $0 }
        if let asked {
            // The cluster is what the NameServers of the console's own broker list.
            let status: Rocketmq_Admin_V1_BrokerStatus
            do {
                status = try await Rocketmq_Admin_V1_Admin.Client(channel: await channels.channel(for: own)).getBrokerStatus(.init(), options: Self.callOptions)
            } catch {
                return Self.html(page(title: "Broker unavailable", body: "<p class=\"error\">\(escaped("\(own)")): \(escaped("\(error)"))</p>"), status: .badGateway)
            }
            let known = await clusterBrokers(nameServers: status.nameServers).flatMap(\.endpoints)
            guard known.contains(asked), let parsed = ServerAddress(parsing: asked) else {
                return Self.html(page(title: "Not found", body: "<p class=\"error\">\(escaped(asked)) is not a broker of this cluster.</p>"), status: .notFound)
            }
            address = parsed
        }
        return await ConsoleRequest.$broker.withValue(asked) {
            await renderPage(address, body)
        }
    }

    private func renderPage(_ address: ServerAddress, _ body: (Rocketmq_Admin_V1_Admin.Client) async throws -> String) async -> Response {
        do {
            let channel = await channels.channel(for: address)
            return Self.html(try await body(Rocketmq_Admin_V1_Admin.Client(channel: channel)), status: .ok)
        } catch let error as RPCError where error.code == .notFound {
            return Self.html(page(title: "Not found", body: "<p class=\"error\">\(escaped(error.message))</p>"), status: .notFound)
        } catch let error as RPCError where error.code == .deadlineExceeded {
            return Self.html(page(title: "Broker too slow", body: "<p class=\"error\">\(escaped("\(address)")) did not answer within 5 s.</p>"), status: .gatewayTimeout)
        } catch {
            logger.warning("console page failed", metadata: ["broker": "\(address)", "error": "\(error)"])
            return Self.html(page(title: "Broker unavailable", body: "<p class=\"error\">\(escaped("\(address)")): \(escaped("\(error)"))</p>"), status: .badGateway)
        }
    }

    private static func html(_ text: String, status: HTTPResponse.Status) -> Response {
        Response(status: status, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// A path segment as the name it encodes (links percent-encode names: `%RETRY%g`, `a|b`).
    private static func pathParameter(_ raw: String?) -> String {
        guard let raw else { return "" }
        return raw.removingPercentEncoding ?? raw
    }

    private static func isSystem(_ topic: String) -> Bool {
        topic.hasPrefix("%") || topic.hasPrefix("RMQ_SYS_") || topic == "TBW102" || topic == "SCHEDULE_TOPIC_XXXX"
    }

    private static func permission(_ value: Int32) -> String {
        switch value {
        case 6: "read/write"
        case 4: "read"
        case 2: "write"
        default: "none"
        }
    }

    private static func time(_ timestamp: Google_Protobuf_Timestamp) -> String {
        timestamp.date.formatted(.iso8601)
    }

    /// The body as text when it is UTF-8 (cut to 2 KiB), otherwise its size.
    private static func preview(_ body: [UInt8]) -> String {
        guard let text = String(validating: body, as: UTF8.self) else { return "(\(body.count) bytes, not UTF-8)" }
        let shown = text.prefix(2048)
        return shown.endIndex < text.endIndex ? String(shown) + "… (\(body.count) bytes)" : text
    }

    /// Every Admin call gives up after 5 s: a stuck broker gets a 504 page, not a hung request.
    private static let callOptions = CallOptions(timeout: .seconds(5))

    /// The fields of a form's query string (`a=1&b=x+y`): `+` is a space there, then
    /// percent-decoding; the first of a repeated field counts.
    static func formFields(_ query: String) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ text: Substring) -> String {
                let spaced = text.replacingOccurrences(of: "+", with: " ")
                return spaced.removingPercentEncoding ?? spaced
            }
            let name = decode(parts[0])
            if fields[name] == nil { fields[name] = parts.count > 1 ? decode(parts[1]) : "" }
        }
        return fields
    }
}

/// One gRPC channel per broker address, made on first use and closed when the console stops.
private actor ChannelCache {
    private var channels: [ServerAddress: RPCChannel] = [:]

    func channel(for address: ServerAddress) -> RPCChannel {
        if let channel = channels[address] { return channel }
        let channel = RPCChannel(configuration: ChannelConfiguration(host: address.host, port: address.port))
        channels[address] = channel
        return channel
    }

    func closeAll() async {
        for channel in channels.values { await channel.close() }
        channels = [:]
    }
}

/// Refuses requests whose `Host` is not a loopback name, with 421: a web page elsewhere that
/// points its own host name at 127.0.0.1 (DNS rebinding) would otherwise read the console, and
/// with it message bodies, from the user's browser.
struct LoopbackHostCheck<Context: RequestContext>: RouterMiddleware {
    // `@concurrent` as Hummingbird declares it (this package makes async closures
    // nonisolated(nonsending) by default).
    @concurrent func handle(
        _ request: Request, context: Context, next: @concurrent (Request, Context) async throws -> Response
    ) async throws -> Response {
        let host = request.head.authority ?? ""
        guard Self.isLoopback(host) else {
            return Response(
                status: .misdirectedRequest, headers: [.contentType: "text/plain; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: "the console answers only to 127.0.0.1, localhost or [::1]\n")))
        }
        return try await next(request, context)
    }

    /// `127.0.0.1`, `localhost` or `[::1]`, with or without a port.
    static func isLoopback(_ host: String) -> Bool {
        var name = Substring(host.lowercased())
        if name.hasPrefix("[") {
            guard let close = name.firstIndex(of: "]") else { return false }
            name = name[name.startIndex...close]
        } else if let colon = name.lastIndex(of: ":") {
            name = name[..<colon]
        }
        return name == "127.0.0.1" || name == "localhost" || name == "[::1]"
    }
}
