import Foundation
import Logging
import RocketMQAPI
import RocketMQNameServer
import RocketMQStore
import RocketRPC
import Synchronization

/// A slave's side of replication: keeps one FollowLog stream open to the master, appends what
/// arrives to the local store (which dispatches it) and acknowledges it; every two seconds it
/// copies the master's metadata files, applied once the local log has caught up with the
/// point they were read at. Reconnects after a back-off (0.5 s doubling up to 5 s).
final class ReplicaFollower: Sendable {
    struct Status: Sendable {
        var masterAddress = ""
        var connected = false
        var masterOffset: Int64 = 0
        var lastError = ""
    }

    /// Metadata read from the master, waiting until the log reaches `masterOffset`.
    private struct PendingMetadata: Sendable {
        var files: [Rocketmq_Ha_V1_MetadataFile]
        var masterOffset: Int64
    }

    private let state = Mutex(Status())
    /// The last tail kept rather than cut back (see `cutBack`): the master, the log's end, why.
    private let keptTail = Mutex<(master: String, end: Int64, why: String)?>(nil)
    private let pending = Mutex<PendingMetadata?>(nil)
    private let task = Mutex<Task<Void, Never>?>(nil)
    static let metadataInterval: Duration = .seconds(2)

    var status: Status { state.withLock { $0 } }

    /// Follows the master until `stop()` or the caller's cancellation. Starts nothing once the
    /// broker is no longer a slave: `becomeMaster` lowers that flag before it calls `stop()`, and
    /// the check and the hand-over of the task share `stop()`'s lock, so a follower that starts
    /// concurrently either sees the flag or is stopped.
    func run(broker: Broker) async {
        let running: Task<Void, Never>? = task.withLock { current in
            guard broker.isSlave else { return nil }
            let started = Task { await self.follow(broker: broker) }
            current = started
            return started
        }
        guard let running else { return }
        await withTaskCancellationHandler {
            await running.value
        } onCancel: {
            running.cancel()
        }
    }

    /// Stops following and returns once the last append is done. Metadata read from the master
    /// followed so far is dropped: it must not be applied under another master.
    func stop() async {
        let running = task.withLock { $0 }
        running?.cancel()
        await running?.value
        pending.withLock { $0 = nil }
    }

    private func follow(broker: Broker) async {
        let configuration = broker.configuration
        guard let master = configuration.masterAddress, let endpoint = BrokerEndpoint(parsing: master) else {
            broker.logger.error("a slave needs --master host:port; not replicating")
            state.withLock { $0.lastError = "no usable master address (host:port)" }
            try? await Task.sleep(for: .seconds(1))  // `runReplication` calls again: not in a tight loop
            return
        }
        state.withLock { $0.masterAddress = master }
        var channelConfiguration = ChannelConfiguration(host: endpoint.host, port: endpoint.port, connectTimeout: .seconds(5))
        channelConfiguration.backoff = ChannelConfiguration.Backoff(initial: .milliseconds(500), maximum: .seconds(5))
        // A chunk carries up to 1 MiB of records, or one record of the largest size allowed.
        channelConfiguration.maxReceiveMessageSize = max(16 << 20, broker.store.configuration.maxMessageSize + (2 << 20))
        let channel = RPCChannel(configuration: channelConfiguration, logger: broker.logger)
        let client = Rocketmq_Ha_V1_Replication.Client(channel: channel)
        var callOptions = CallOptions()
        if let token = configuration.adminToken { callOptions.metadata.add("authorization", "Bearer " + token) }
        let options = callOptions
        var failures = 0
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.syncMetadata(client, options: options, broker: broker) }
            while !Task.isCancelled {
                let outcome = await stream(client, options: options, broker: broker, master: master, quiet: failures > 0)
                failures = outcome == .progressed ? 0 : failures + 1
                state.withLock { $0.connected = false }
                guard !Task.isCancelled else { break }
                if outcome == .refused, await cutBack(client, options: options, broker: broker, master: master) { continue }
                try? await Task.sleep(for: min(.milliseconds(500) * (1 << min(failures, 4)), .seconds(5)))
            }
            group.cancelAll()
        }
        await channel.close()
    }

    /// How one FollowLog stream ended.
    private enum StreamOutcome {
        /// Chunks arrived before it ended.
        case progressed
        /// The master refused this log as it is (FAILED_PRECONDITION or OUT_OF_RANGE).
        case refused
        case failed
    }

    /// One FollowLog stream.
    private func stream(
        _ client: Rocketmq_Ha_V1_Replication.Client, options: CallOptions, broker: Broker, master: String, quiet: Bool
    ) async -> StreamOutcome {
        let store = broker.store
        let configuration = broker.configuration
        let (acks, ack) = AsyncStream<Int64>.makeStream(bufferingPolicy: .bufferingNewest(1))
        var opening = Rocketmq_Ha_V1_FollowLogRequest(
            brokerName: configuration.brokerName, brokerId: Int64(configuration.brokerId), address: broker.routeAddress,
            segmentSize: store.configuration.commitLogSegmentSize, offset: store.commitLogMaxOffset)
        do {
            if let tail = try store.lastRecord() {
                opening.tailOffset = tail.offset
                opening.tailSize = Int32(tail.size)
                opening.tailCrc = tail.checksum
            }
        } catch {
            state.withLock { $0.lastError = "cannot read this log's last record: \(error)" }
            return .failed
        }
        let first = opening
        let received = Mutex(false)
        var refused = false
        do {
            try await client.followLog(options: options, requests: { writer in
                try await writer.write(first)
                for await offset in acks { try await writer.write(Rocketmq_Ha_V1_FollowLogRequest(offset: offset)) }
            }, handle: { chunks in
                defer { ack.finish() }
                for try await chunk in chunks {
                    if !received.withLock({ $0 }) {
                        received.withLock { $0 = true }
                        self.state.withLock {
                            $0.connected = true
                            $0.lastError = ""
                        }
                        broker.logger.info("following the master", metadata: ["master": "\(master)", "from": "\(chunk.offset)"])
                    }
                    let end = store.commitLogMaxOffset
                    if end == 0, store.commitLogMinOffset == 0, chunk.offset > 0 {
                        // The master no longer keeps the start of its log: this copy starts where it does.
                        try store.startEmptyLog(at: chunk.offset)
                    }
                    let written = chunk.data.isEmpty ? store.commitLogMaxOffset : try store.appendReplicated(chunk.data, at: chunk.offset)
                    self.state.withLock { $0.masterOffset = max(chunk.masterOffset, written) }
                    ack.yield(written)
                }
            })
            if !Task.isCancelled {
                broker.logger.warning("the master ended the replication stream; reconnecting", metadata: ["master": "\(master)"])
            }
        } catch {
            if let error = error as? RPCError, [.failedPrecondition, .outOfRange].contains(error.code) { refused = true }
            if !Task.isCancelled {
                state.withLock { $0.lastError = "\(error)" }
                broker.logger.log(
                    level: quiet ? .debug : .warning, "replication stream failed; reconnecting",
                    metadata: ["master": "\(master)", "error": "\(error)"])
            }
        }
        ack.finish()
        if received.withLock({ $0 }) { return .progressed }
        return refused ? .refused : .failed
    }

    // MARK: Divergence

    /// After the master refused this log: finds the last record it shares with the master's and
    /// cuts the log back to it, so that the next stream follows on from there. That is the fate of
    /// a former master's records its successor never got (written, but not yet replicated when it
    /// failed), as in RocketMQ's controller mode. Returns whether it cut anything: nothing when
    /// the logs share no record (a slave behind the master's retention), or this log is a prefix
    /// of the master's after all (the refusal had another cause).
    private func cutBack(_ client: Rocketmq_Ha_V1_Replication.Client, options: CallOptions, broker: Broker, master: String) async -> Bool {
        let store = broker.store
        let end = store.commitLogMaxOffset
        // The same log refused by the same master again: the verdict stands; no new search.
        if let kept = keptTail.withLock({ $0 }), kept.master == master, kept.end == end {
            state.withLock { $0.lastError = kept.why }
            return false
        }
        do {
            let (found, masterHost) = try await sharedEnd(client, options: options, store: store)
            guard let shared = found, shared < end else { return false }
            // A sync-flush slave checks what it has flushed; the rest is checked on a later try.
            guard store.replicableOffset >= end else { return false }
            // Only records this broker wrote itself (as a master) are cut off: records written by
            // the master, or by anyone else, may be the last copy of acknowledged sends (an
            // async-flush master that lost its log's tail in a crash).
            let own = store.configuration.storeHost
            let foreign = try store.firstRecord(from: shared, storedByOtherThan: own)
            if own == masterHost || foreign != nil {
                let why = "holds records \(shared)..<\(end) the master does not have and this broker (\(own)) did not write (the master's \(masterHost), lost in a crash?): not cut back"
                broker.logger.error(
                    "this log holds records the master does not have and this broker did not write: not cut back; promote this slave, or empty its data directory to copy the master afresh",
                    metadata: ["master": "\(master)", "from": "\(shared)", "to": "\(end)", "storeHost": "\(own)", "masterStoreHost": "\(masterHost)"])
                keptTail.withLock { $0 = (master, end, why) }
                state.withLock { $0.lastError = why }
                return false
            }
            try store.truncateReplicatedLog(to: shared)
            broker.logger.warning(
                "this log held records its master never had (a former master's unreplicated tail?): cut back to the last record both share",
                metadata: ["master": "\(master)", "from": "\(end)", "to": "\(shared)", "bytesDropped": "\(end - shared)"])
            state.withLock { $0.lastError = "" }
            return true
        } catch {
            broker.logger.warning("could not compare this log with the master's", metadata: ["master": "\(master)", "error": "\(error)"])
            return false
        }
    }

    /// The end of the last record this log shares with the master's (nil when they share none),
    /// and the store host the master writes into its records.
    private func sharedEnd(
        _ client: Rocketmq_Ha_V1_Replication.Client, options: CallOptions, store: MessageStore
    ) async throws -> (end: Int64?, masterHost: String) {
        var timed = options
        timed.timeout = .seconds(30)
        let callOptions = timed
        let batch = ReplicationServiceProvider.maxComparedRecords
        var masterHost = ""
        let end = try await store.sharedLogEnd(batch: batch) { records in
            let digests = try records.map { record throws(StoreError) in
                Rocketmq_Ha_V1_RecordDigest(
                    offset: record.offset, size: Int32(record.size), crc: try store.recordChecksum(at: record.offset, size: record.size))
            }
            let response = try await client.compareRecords(Rocketmq_Ha_V1_CompareRecordsRequest(records: digests), options: callOptions)
            guard response.same.count == records.count else {
                throw RPCError(code: .internalError, message: "the master compared \(response.same.count) of \(records.count) records")
            }
            masterHost = response.storeHost
            return response.same
        }
        return (end, masterHost)
    }

    /// Copies the master's metadata files every `metadataInterval`.
    private func syncMetadata(_ client: Rocketmq_Ha_V1_Replication.Client, options: CallOptions, broker: Broker) async {
        while !Task.isCancelled {
            do {
                var timed = options
                timed.timeout = .seconds(10)
                let response = try await client.getMetadata(Rocketmq_Ha_V1_GetMetadataRequest(), options: timed)
                broker.noteFollowedMasterEpoch(response.masterEpoch)
                pending.withLock { $0 = PendingMetadata(files: response.files, masterOffset: response.masterOffset) }
                // Applied here, off the stream's path (a reload replays journal events: it must not
                // hold up acknowledgements a sync master waits for), once the log has caught up.
                for _ in 0..<40 where !Task.isCancelled {
                    if await applyPendingMetadata(broker: broker) { break }
                    try? await Task.sleep(for: .milliseconds(50))
                }
            } catch {
                broker.logger.debug("could not copy the master's metadata", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: Self.metadataInterval)
        }
    }

    /// Writes the metadata read last once the local log holds everything the master's log did
    /// then (so the progress snapshot never points past the local journal), and reloads the
    /// consumer progress from it and the replicated journal, so that offset reads (pull
    /// consumers, admin, console) on the slave show the master's progress of that moment.
    /// Returns whether nothing is left pending.
    @discardableResult
    private func applyPendingMetadata(broker: Broker) async -> Bool {
        let (ready, left): (PendingMetadata?, Bool) = pending.withLock { pending in
            guard let p = pending else { return (nil, false) }
            guard broker.store.commitLogMaxOffset >= p.masterOffset else { return (nil, true) }
            pending = nil
            return (p, false)
        }
        guard let ready else { return !left }
        do {
            try broker.applyReplicatedMetadata(ready.files.map { ($0.name, $0.content) })
            try await broker.consumption.reload(snapshotDirty: false)
        } catch {
            broker.logger.warning("could not apply the master's metadata", metadata: ["error": "\(error)"])
        }
        return true
    }
}
