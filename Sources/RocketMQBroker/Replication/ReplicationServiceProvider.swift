import Foundation
import Logging
import RocketMQAPI
import RocketMQStore
import RocketRPC

/// `rocketmq.ha.v1.Replication` on a master: streams its CommitLog to slaves and serves the
/// metadata files that live beside it.
public struct ReplicationServiceProvider: Rocketmq_Ha_V1_Replication.ServiceProtocol {
    let broker: Broker
    /// Largest chunk of log per message (whole records; a larger record goes alone).
    static let chunkBytes = 1 << 20
    /// Longest silence on an idle stream.
    static let keepaliveInterval: Duration = .seconds(3)

    public init(broker: Broker) {
        self.broker = broker
    }

    /// The log holds every message: a slave presents the admin credential when auth is on.
    private func authorize(_ context: ServerContext) throws(RPCError) {
        guard broker.presentsAdminCredential(context) else {
            throw RPCError(code: .unauthenticated, message: "replication needs `authorization: Bearer <admin token>` of the master")
        }
    }

    public func followLog(
        requests: RequestStream<Rocketmq_Ha_V1_FollowLogRequest>,
        response: ResponseWriter<Rocketmq_Ha_V1_LogChunk>,
        context: ServerContext
    ) async throws {
        try authorize(context)
        let configuration = broker.configuration
        // The slave flag, not the configured role: a master fenced a moment ago takes no slaves.
        guard !broker.isSlave else {
            throw RPCError(code: .failedPrecondition, message: "\(broker.routeAddress) is a slave: follow its master")
        }
        var iterator = requests.makeAsyncIterator()
        guard let first = try await iterator.next() else { return }
        guard first.brokerName == configuration.brokerName else {
            throw RPCError(code: .failedPrecondition, message: "this master serves broker group \(configuration.brokerName), not \(first.brokerName)")
        }
        guard first.brokerId != 0 else {
            throw RPCError(code: .failedPrecondition, message: "a slave needs a broker id above 0")
        }
        let store = broker.store
        guard first.segmentSize == store.configuration.commitLogSegmentSize else {
            throw RPCError(code: .failedPrecondition, message: "the slave's CommitLog segments are \(first.segmentSize) bytes, the master's \(store.configuration.commitLogSegmentSize): they must be equal")
        }
        var offset = first.offset
        let (minOffset, maxOffset) = (store.commitLogMinOffset, store.commitLogMaxOffset)
        if offset > maxOffset {
            throw RPCError(code: .outOfRange, message: "the slave's log ends at \(offset), beyond this master's end \(maxOffset): it holds records this master never had (a former master?); empty its data directory to copy afresh")
        }
        if first.tailSize > 0, first.tailOffset >= minOffset {
            // The slave's last record must be the master's record at that offset, byte for byte.
            let tailEnd = first.tailOffset + Int64(first.tailSize)
            let same = tailEnd <= first.offset
                && (try? store.recordChecksum(at: first.tailOffset, size: Int(first.tailSize))) == first.tailCrc
            if !same {
                throw RPCError(code: .failedPrecondition, message: "the slave's log diverged from this master's: its record at \(first.tailOffset) is not the master's (a former master's unreplicated tail?); empty its data directory to copy afresh")
            }
        }
        if offset < minOffset {
            // An empty slave starts at the oldest segment kept; a slave that fell behind
            // retention can no longer continue its log.
            guard offset == 0 else {
                throw RPCError(code: .outOfRange, message: "the slave's log ends at \(offset), but this master keeps its log from \(minOffset) only: empty the slave's data directory to copy afresh")
            }
            offset = minOffset
        }
        let (id, doorbell) = broker.replication.attach(address: first.address, brokerId: first.brokerId, offset: first.offset)
        defer { broker.replication.detach(id) }
        let metadata: Logger.Metadata = ["slave": "\(first.address)", "brokerId": "\(first.brokerId)", "from": "\(offset)"]
        broker.logger.info("slave attached", metadata: metadata)
        let hub = broker.replication
        let start = offset
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                // Acknowledgements, until the slave ends the stream.
                // (A new iterator continues where the first stopped: iterators are views of one source.)
                group.addTask {
                    for try await ack in requests { hub.acknowledge(id, offset: ack.offset) }
                }
                // A ring every few seconds: an idle stream still carries the master's offset (an
                // empty chunk), and a slave that vanished without closing is noticed by the write.
                group.addTask {
                    while !Task.isCancelled {
                        try await Task.sleep(for: Self.keepaliveInterval)
                        hub.ring(id)
                    }
                }
                // The log, from `offset` on, as it grows; first an empty chunk, so the slave
                // knows the stream is up even when there is nothing to copy.
                group.addTask {
                    var next = start
                    var rings = doorbell.makeAsyncIterator()
                    try await response.write(Rocketmq_Ha_V1_LogChunk(offset: next, masterOffset: store.commitLogMaxOffset))
                    var lastSent = ContinuousClock.now
                    while !Task.isCancelled {
                        let bytes: [UInt8]
                        do throws(StoreError) {
                            bytes = try store.readLog(from: next, maxBytes: Self.chunkBytes)
                        } catch {
                            if case .offsetOutOfRange = error {
                                throw RPCError(code: .outOfRange, message: "the log at \(next) is no longer kept (retention): empty the slave's data directory to copy afresh")
                            }
                            throw RPCError(code: .internalError, message: "cannot read the log at \(next): \(error)")
                        }
                        if bytes.isEmpty {
                            if ContinuousClock.now - lastSent >= Self.keepaliveInterval {
                                try await response.write(Rocketmq_Ha_V1_LogChunk(offset: next, masterOffset: store.commitLogMaxOffset))
                                lastSent = .now
                            }
                            guard await rings.next() != nil else { return }
                            continue
                        }
                        lastSent = .now
                        try await response.write(Rocketmq_Ha_V1_LogChunk(offset: next, data: bytes, masterOffset: store.commitLogMaxOffset))
                        next += Int64(bytes.count)
                    }
                }
                // Either side ending ends the stream.
                try await group.next()
                group.cancelAll()
            }
        } catch {
            broker.logger.notice("slave detached", metadata: metadata.merging(["error": "\(error)"]) { $1 })
            throw error
        }
        broker.logger.info("slave detached", metadata: metadata)
    }

    /// Most records one `CompareRecords` call asks about.
    static let maxComparedRecords = 1024

    public func compareRecords(
        request: Rocketmq_Ha_V1_CompareRecordsRequest, context: ServerContext
    ) async throws -> Rocketmq_Ha_V1_CompareRecordsResponse {
        try authorize(context)
        guard !broker.isSlave else {
            throw RPCError(code: .failedPrecondition, message: "\(broker.routeAddress) is a slave: compare with its master")
        }
        guard request.records.count <= Self.maxComparedRecords else {
            throw RPCError(code: .invalidArgument, message: "\(request.records.count) records asked about; at most \(Self.maxComparedRecords) per call")
        }
        let store = broker.store
        // Only what the master would send a slave counts: a record past it is not shared yet.
        let (minOffset, end) = (store.commitLogMinOffset, store.replicableOffset)
        var same: [Bool] = []
        same.reserveCapacity(request.records.count)
        for record in request.records {
            guard record.size > 0, record.offset >= minOffset, record.offset + Int64(record.size) <= end else {
                same.append(false)
                continue
            }
            do {
                same.append(try store.recordChecksum(at: record.offset, size: Int(record.size)) == record.crc)
            } catch {
                // Unreadable here is not "different": the slave must not cut off what may be the only good copy.
                throw RPCError(code: .dataLoss, message: "cannot read this master's log at \(record.offset): \(error)")
            }
        }
        return Rocketmq_Ha_V1_CompareRecordsResponse(same: same, storeHost: store.configuration.storeHost)
    }

    public func getMetadata(request: Rocketmq_Ha_V1_GetMetadataRequest, context: ServerContext) async throws -> Rocketmq_Ha_V1_GetMetadataResponse {
        try authorize(context)
        // Files first, then the log's end: the progress snapshot and the transaction mark then
        // never point past the log a slave has once it reached `masterOffset`.
        let directory = broker.store.configDirectory
        let files = Broker.replicatedMetadataFiles.compactMap { name -> Rocketmq_Ha_V1_MetadataFile? in
            guard let data = FileManager.default.contents(atPath: directory + "/" + name) else { return nil }
            return Rocketmq_Ha_V1_MetadataFile(name: name, content: [UInt8](data))
        }
        return Rocketmq_Ha_V1_GetMetadataResponse(files: files, masterOffset: broker.store.commitLogMaxOffset, masterEpoch: broker.masterEpoch)
    }
}
