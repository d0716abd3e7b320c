import ArgumentParser
import Foundation
import RocketMQAdmin
import RocketMQAPI
import RocketRPC
import Synchronization

/// Where a RocketMQ verb sends its calls: `-n` NameServer(s) (`host:port;host:port`) to find
/// the cluster's master brokers, `-b` a broker directly, `-c` to keep one cluster; `--token`
/// (or `ROCKETMQ_ADMIN_TOKEN`) for calls that change a broker; `--json` for scripts.
struct ClusterTarget: ParsableArguments {
    @Option(name: [.customShort("n"), .customLong("namesrv")], help: "NameServer address(es), host:port;host:port.")
    var nameServer: String?

    @Option(name: [.customShort("b"), .customLong("broker")], help: "Broker address host:port (instead of -n).")
    var broker: String?

    @Option(name: [.customShort("c"), .customLong("cluster")], help: "Only brokers of this cluster.")
    var cluster: String?

    @Option(help: "Admin credential for calls that change a broker (default: $ROCKETMQ_ADMIN_TOKEN).")
    var token: String?

    @Option(help: "Seconds each call may take.")
    var timeout: Double = 10

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func validate() throws {
        if nameServer == nil && broker == nil { throw ValidationError("give -n NAMESRV or -b BROKER") }
    }

    var callOptions: CallOptions {
        var options = CallOptions(timeout: .milliseconds(Int64(timeout * 1000)))
        options.metadata.add("x-mq-client-id", "mqadmin-\(ProcessInfo.processInfo.processIdentifier)")
        options.metadata.add("x-mq-language", "SWIFT")
        if let token = token ?? ProcessInfo.processInfo.environment["ROCKETMQ_ADMIN_TOKEN"] {
            options.metadata.add("authorization", "Bearer " + token)
        }
        return options
    }

    static func channel(_ address: String) throws -> RPCChannel {
        guard let parsed = ServerAddress(parsing: address) else {
            throw ValidationError("\(address) is not host:port (an IPv6 address in brackets: [::1]:8081)")
        }
        return RPCChannel(configuration: ChannelConfiguration(host: parsed.host, port: parsed.port))
    }

    /// Runs `body` with a channel to the first NameServer that answers.
    func withNameServer<T>(_ body: (RPCChannel) async throws -> T) async throws -> T {
        guard let list = nameServer else { throw ValidationError("this verb needs -n NAMESRV") }
        var lastError: (any Error)?
        for address in list.split(separator: ";").map({ String($0).trimmingCharacters(in: .whitespaces) }) where !address.isEmpty {
            let channel = try Self.channel(address)
            do {
                let result = try await body(channel)
                await channel.close()
                return result
            } catch {
                await channel.close()
                lastError = error
            }
        }
        throw lastError ?? ValidationError("no NameServer address in -n")
    }

    /// The clusters the NameServer knows, and those `-c` keeps (all of them without it).
    func clusters() async throws -> (known: [Rocketmq_Namesrv_V1_ClusterInfo], kept: [Rocketmq_Namesrv_V1_ClusterInfo]) {
        let info = try await withNameServer { channel in
            try await Rocketmq_Namesrv_V1_NameServer.Client(channel: channel).getClusterInfo(.init(), options: callOptions)
        }
        return (info.clusters, info.clusters.filter { cluster == nil || $0.name == cluster })
    }

    /// The master brokers to act on: `-b`, or every master the NameServer knows (in `-c` if given).
    func brokers() async throws -> [String] {
        if let broker { return [broker] }
        let addresses = try await clusters().kept.flatMap(\.brokers).filter { $0.role == .master }.compactMap(\.endpoints.first)
        guard !addresses.isEmpty else { throw ValidationError("the NameServer knows no master broker\(cluster.map { " in cluster \($0)" } ?? "")") }
        return addresses
    }

    /// Runs `body` against each target broker's Admin service, every one of them: a broker that
    /// fails is named on stderr (``BrokerFailures``) and the others still answer; the verb then
    /// exits 1. A broker answering NOT_FOUND does not hold what was asked for (a topic, group or
    /// message that lives elsewhere) and is left out; if every broker says so, that is the
    /// verb's error, or (`lookingFor`, a lookup that says "not found" itself) no results.
    func eachBroker<T>(lookingFor: Bool = false, _ body: (String, Rocketmq_Admin_V1_Admin.Client) async throws -> T) async throws -> [T] {
        var results: [T] = []
        var notFound: RPCError?
        var failed = 0
        let addresses = try await brokers()
        for address in addresses {
            let channel = try Self.channel(address)
            do {
                results.append(try await body(address, Rocketmq_Admin_V1_Admin.Client(channel: channel)))
            } catch let error as RPCError where error.code == .notFound {
                notFound = error
            } catch {
                BrokerFailures.record(address, error)
                failed += 1
            }
            await channel.close()
        }
        if results.isEmpty, failed == 0, !lookingFor, let notFound { throw notFound }
        if results.isEmpty, failed > 0 { throw VerbError(failed == 1 && addresses.count == 1 ? "the broker failed (above)" : "no broker answered (above)") }
        return results
    }

    /// Columns of counts, offsets and ids, numbers in `--json` output.
    private static let numberColumns: Set<String> = [
        "id", "topics", "groups", "clients", "minOffset", "maxOffset", "flushedOffset", "openTransactions", "pendingDelayMessages",
        "lagBytes", "queue", "queues", "readQueues", "writeQueues", "brokerOffset", "consumerOffset", "lag", "inFlight", "newOffset", "offset", "attempt",
        "maxAttempts", "redriven", "remaining",
    ]
    /// Columns of yes/no settings, booleans in `--json` output.
    private static let flagColumns: Set<String> = ["fifo", "consumeEnabled"]

    /// A cell as `--json` prints it: a number or boolean where its column holds them (null where
    /// such a cell is empty: a trace event without a delivery attempt), else text.
    static func jsonValue(_ cell: String, in column: String) -> Any {
        if numberColumns.contains(column) {
            if let number = Int64(cell) { return NSNumber(value: number) }
            if cell.isEmpty { return NSNull() }
        }
        if flagColumns.contains(column), let flag = Bool(cell) { return flag }
        return cell
    }

    /// Prints rows as an aligned table, or as a JSON array of objects with `--json` (counts,
    /// offsets and ids as numbers, flags as booleans).
    func output(_ columns: [String], _ rows: [[String]]) {
        if json {
            let objects = rows.map { row in
                Dictionary(uniqueKeysWithValues: zip(columns, row).map { column, cell in (column, Self.jsonValue(cell, in: column)) })
            }
            if let data = try? JSONSerialization.data(withJSONObject: objects, options: [.prettyPrinted, .sortedKeys]) {
                print(String(decoding: data, as: UTF8.self))
            }
            return
        }
        let widths = columns.indices.map { index in ([columns[index]] + rows.map { $0[index] }).map(\.count).max() ?? 0 }
        func line(_ cells: [String]) -> String {
            zip(cells, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
        print(line(columns))
        for row in rows { print(line(row)) }
    }
}

extension Google_Protobuf_Timestamp {
    var text: String {
        ISO8601DateFormatter().string(from: date)
    }
}

/// The brokers a verb could not act on, reported on stderr as they fail; `Entry` exits 1 after
/// the verb printed what the other brokers answered.
enum BrokerFailures {
    private static let count = Atomic<Int>(0)

    static func record(_ address: String, _ error: any Error) {
        FileHandle.standardError.write(Data("mqadmin: broker \(address): \(error)\n".utf8))
        count.add(1, ordering: .relaxed)
    }

    static var any: Bool { count.load(ordering: .relaxed) > 0 }
}
