import Foundation
import Logging
import RocketMQAPI
import RocketMQNameServer
import RocketRPC
import Synchronization

/// What failover needs of etcd (v3 API, `etcdserverpb`), over our own gRPC client: one key read,
/// created only if absent, or deleted; leases granted, kept alive and revoked.
///
/// Talks to the first of `endpoints` that answers; a failed call moves on to the next one for the
/// calls after it. Thread-safe.
final class EtcdClient: Sendable {
    let endpoints: [String]
    private let channels: [RPCChannel]
    private let current = Mutex(0)

    /// - Parameter endpoints: `host:port` of etcd's client URLs (plain HTTP/2, as `http://` URLs serve it).
    init(endpoints: [String], logger: Logger) throws(BrokerError) {
        var channels: [RPCChannel] = []
        for endpoint in endpoints {
            guard let parsed = Self.endpoint(endpoint) else { throw .badRequest("etcd endpoint \(endpoint) is not host:port") }
            var configuration = ChannelConfiguration(host: parsed.host, port: parsed.port, connectTimeout: .seconds(2))
            configuration.backoff = ChannelConfiguration.Backoff(initial: .milliseconds(200), maximum: .seconds(2))
            channels.append(RPCChannel(configuration: configuration, logger: logger))
        }
        guard !channels.isEmpty else { throw .badRequest("no etcd endpoint given") }
        self.endpoints = endpoints
        self.channels = channels
    }

    /// An etcd client URL's `host:port` (an `http://` prefix allowed, as etcd prints its URLs).
    static func endpoint(_ text: String) -> BrokerEndpoint? {
        BrokerEndpoint(parsing: text.hasPrefix("http://") ? String(text.dropFirst(7)) : text)
    }

    /// Runs `call` on the current endpoint; on failure the next call uses the next endpoint.
    private func withChannel<T>(_ call: (RPCChannel) async throws -> T) async throws -> T {
        let index = current.withLock { $0 }
        do {
            return try await call(channels[index])
        } catch {
            current.withLock { $0 = (index + 1) % channels.count }
            throw error
        }
    }

    private static func options(timeout: Duration = .seconds(3)) -> CallOptions { CallOptions(timeout: timeout) }

    /// A lease of `ttl` seconds (etcd may lengthen it); returns its id and granted time to live.
    func grantLease(ttl: Int64) async throws -> (id: Int64, ttl: Int64) {
        let response = try await withChannel { channel in
            try await Etcdserverpb_Lease.Client(channel: channel).leaseGrant(Etcdserverpb_LeaseGrantRequest(ttl: ttl), options: Self.options())
        }
        guard response.error.isEmpty, response.id != 0 else { throw BrokerError.storage("etcd refused a lease: \(response.error)") }
        return (response.id, response.ttl)
    }

    /// Ends a lease now (its keys are deleted). Best effort.
    func revokeLease(_ id: Int64) async {
        _ = try? await withChannel { channel in
            try await Etcdserverpb_Lease.Client(channel: channel).leaseRevoke(Etcdserverpb_LeaseRevokeRequest(id: id), options: Self.options())
        }
    }

    /// Keeps `lease` alive: a request every `interval`, `renewed` with each answer's time to live
    /// (seconds, measured from when its request went out). Returns only by throwing: when the
    /// stream fails, or etcd says the lease is gone (`BrokerError.storage`).
    func keepAlive(_ lease: Int64, every interval: Duration, renewed: @escaping @Sendable (ContinuousClock.Instant, Int64) -> Void) async throws {
        // etcd answers each request once, in order: an answer renews from its own request's
        // send time (never a later one's, which would overstate the lease).
        let sent = Mutex<[ContinuousClock.Instant]>([])
        try await withChannel { channel in
            try await Etcdserverpb_Lease.Client(channel: channel).leaseKeepAlive(options: CallOptions(), requests: { writer in
                while !Task.isCancelled {
                    sent.withLock { $0.append(.now) }
                    try await writer.write(Etcdserverpb_LeaseKeepAliveRequest(id: lease))
                    try await Task.sleep(for: interval)
                }
            }, handle: { responses in
                for try await response in responses {
                    guard response.ttl > 0 else { throw BrokerError.storage("etcd lease \(lease) expired") }
                    guard let sentAt = sent.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) else {
                        throw BrokerError.storage("etcd answered a keep-alive that was not sent")
                    }
                    renewed(sentAt, response.ttl)
                }
                throw BrokerError.storage("etcd ended the keep-alive stream")
            })
        }
    }

    /// The key's current value and lease, or nil when absent.
    func get(_ key: String) async throws -> Mvccpb_KeyValue? {
        let response = try await withChannel { channel in
            try await Etcdserverpb_KV.Client(channel: channel).range(Etcdserverpb_RangeRequest(key: Array(key.utf8)), options: Self.options())
        }
        return response.kvs.first
    }

    /// Sets `key` = `value`, attached to `lease` (0: none).
    func put(_ key: String, value: String, lease: Int64) async throws {
        _ = try await withChannel { channel in
            try await Etcdserverpb_KV.Client(channel: channel).put(
                Etcdserverpb_PutRequest(key: Array(key.utf8), value: Array(value.utf8), lease: lease), options: Self.options())
        }
    }

    /// Every key starting with `prefix`, with its value.
    func list(prefix: String) async throws -> [(key: String, value: String)] {
        var end = Array(prefix.utf8)
        // The range [prefix, prefix + 1): the last byte incremented (etcd's prefix convention).
        while let last = end.last, last == 0xFF { end.removeLast() }
        if !end.isEmpty { end[end.count - 1] += 1 }
        let request = Etcdserverpb_RangeRequest(key: Array(prefix.utf8), rangeEnd: end.isEmpty ? [0] : end)
        let response = try await withChannel { channel in
            try await Etcdserverpb_KV.Client(channel: channel).range(request, options: Self.options())
        }
        return response.kvs.map { (String(decoding: $0.key, as: UTF8.self), String(decoding: $0.value, as: UTF8.self)) }
    }

    /// Creates `key` = `value` attached to `lease` if no such key exists (one transaction).
    /// Returns whether it did; otherwise the key as it stands (nil if it vanished meanwhile).
    func createIfAbsent(_ key: String, value: String, lease: Int64) async throws -> (created: Bool, current: Mvccpb_KeyValue?) {
        let keyBytes = Array(key.utf8)
        let request = Etcdserverpb_TxnRequest(
            compare: [Etcdserverpb_Compare(result: .equal, target: .create, key: keyBytes, targetUnion: .createRevision(0))],
            success: [Etcdserverpb_RequestOp(request: .requestPut(Etcdserverpb_PutRequest(key: keyBytes, value: Array(value.utf8), lease: lease)))],
            failure: [Etcdserverpb_RequestOp(request: .requestRange(Etcdserverpb_RangeRequest(key: keyBytes)))])
        let response = try await withChannel { channel in
            try await Etcdserverpb_KV.Client(channel: channel).txn(request, options: Self.options())
        }
        if response.succeeded { return (true, nil) }
        guard case .responseRange(let range)? = response.responses.first?.response else { return (false, nil) }
        return (false, range.kvs.first)
    }

    /// Deletes `key` if it is still attached to `lease` (an earlier run's key of this broker).
    func delete(_ key: String, ifLease lease: Int64) async throws {
        let keyBytes = Array(key.utf8)
        let request = Etcdserverpb_TxnRequest(
            compare: [Etcdserverpb_Compare(result: .equal, target: .lease, key: keyBytes, targetUnion: .lease(lease))],
            success: [Etcdserverpb_RequestOp(request: .requestDeleteRange(Etcdserverpb_DeleteRangeRequest(key: keyBytes)))])
        _ = try await withChannel { channel in
            try await Etcdserverpb_KV.Client(channel: channel).txn(request, options: Self.options())
        }
    }

    func close() async {
        for channel in channels { await channel.close() }
    }
}
