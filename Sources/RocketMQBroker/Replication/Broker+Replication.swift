import Foundation
import Logging
import RocketMQAPI
import RocketMQNameServer
import RocketMQStore
import RocketRPC

/// Replication as the rest of the broker sees it: the role, the guard on writes, the slave's
/// copy of its master's metadata, promotion.
extension Broker {
    /// Config-directory files a slave copies from its master (the rest of its state is in the log).
    static let replicatedMetadataFiles = [
        "topics.json", "subscriptionGroups.json", "consumerProgress.json", TransactionService.markFile, DelayService.markFile,
        MessageStore.queueFloorsFile,
    ]
    /// Written at promotion; at start it overrides a configured slave role (see `init`).
    static let promotionFile = "promotion.json"
    /// The highest epoch of a master this broker followed, as decimal text.
    static let followedMasterEpochFile = "followedMasterEpoch"

    /// Whether this broker is a slave now (a promoted slave is a master).
    public var isSlave: Bool { slave.load(ordering: .relaxed) }

    /// Whether a call carries this broker's admin credential (`authorization: Bearer <token>`),
    /// or admin auth is off. State-changing admin calls and replication need it.
    func presentsAdminCredential(_ context: ServerContext) -> Bool {
        guard let token = configuration.adminToken else { return true }
        return context.requestMetadata.first("authorization") == "Bearer " + token
    }

    /// Refuses a write on a slave, naming what to do instead.
    func requireMaster() throws(BrokerError) {
        guard isSlave else { return }
        let configuration = self.configuration
        throw .notMaster(
            "broker \(configuration.brokerName) id \(configuration.brokerId) is a slave: it takes no writes; use its master (broker id 0)"
                + (configuration.masterAddress.map { " at \($0)" } ?? ""))
    }

    /// A slave follows its master until the task is cancelled or the broker is promoted; then
    /// (and on a master) waits for cancellation, so it can run as a ServiceLifecycle service.
    public func runReplication() async {
        while !Task.isCancelled {
            if isSlave, configuration.masterAddress != nil {
                await follower.run(broker: self)  // until stopped: promoted, or told to follow another master
            } else {
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// Keeps the config file's topics and groups for when this broker becomes master (it starts as
    /// a slave or an election candidate, whose tables are its master's copy).
    public func applyWhenMaster(topics: [TopicConfig], groups: [GroupConfig]) {
        fileTables.withLock { $0 = (topics, groups) }
    }

    /// Where replication stands, for `GetReplicationStatus`.
    public var replicationStatus: ReplicationStatus {
        let configuration = self.configuration
        let end = store.commitLogMaxOffset
        var status = ReplicationStatus(role: configuration.role, brokerId: configuration.brokerId, commitLogMaxOffset: end)
        status.failover = election.withLock { $0 }?.summary ?? (electedRole == nil ? "" : "etcd: starting")
        status.writesRefused = writesRefused
        if isSlave {
            let follower = follower.status
            status.masterAddress = follower.masterAddress.isEmpty ? configuration.masterAddress ?? "" : follower.masterAddress
            status.connected = follower.connected
            status.masterOffset = follower.masterOffset
            status.lagBytes = max(0, follower.masterOffset - end)
            status.lastError = follower.lastError
        } else {
            status.replicas = replication.replicas.map { replica in
                ReplicationStatus.Replica(
                    address: replica.address, brokerId: replica.brokerId, acknowledgedOffset: replica.acknowledged,
                    lagBytes: max(0, end - replica.acknowledged), connectedAt: replica.connectedAt,
                    lastAcknowledgedAt: replica.lastAcknowledgedAt)
            }
        }
        return status
    }

    /// A slave writes its master's metadata files and loads the tables among them.
    func applyReplicatedMetadata(_ files: [(name: String, content: [UInt8])]) throws {
        var tablesChanged = false
        for file in files where Self.replicatedMetadataFiles.contains(file.name) {
            switch file.name {
            case "topics.json": tablesChanged = try topics.replaceAll(json: file.content)
            case "subscriptionGroups.json": try groups.replaceAll(json: file.content)
            case MessageStore.queueFloorsFile: try store.applyQueueFloors(json: file.content)
            default: try AtomicFile.write(file.content, to: store.configDirectory + "/" + file.name)
            }
        }
        if tablesChanged { topicsChanged() }
    }

    /// Makes this slave its group's master (broker id 0, `ASYNC_MASTER`): stops following, loads
    /// consumer progress, open transactions and pending delay messages from its copy of the log, takes writes, tells the
    /// NameServers. Survives a restart (`config/promotion.json` overrides a configured slave role).
    /// Unless `force` is set, refuses while the master this slave follows still answers a health
    /// check: two masters would then take writes under one broker name (split brain) until the
    /// old one is stopped.
    /// - Throws: `.badRequest` on a master, or while the master answers.
    public func promoteToMaster(force: Bool = false) async throws {
        guard electedRole == nil else {
            throw BrokerError.notMaster("this broker group fails over through etcd: the election decides who is master")
        }
        if !force, superseded.load(ordering: .relaxed) {
            throw BrokerError.badRequest(
                "this broker was superseded as master by a promoted one (its NameServers refused it): promoting it would demote that master; restart it as its slave, or promote with force")
        }
        if !force, isSlave, let master = configuration.masterAddress, await answersHealthCheck(master) {
            throw BrokerError.badRequest(
                "the master at \(master) still answers: promoting now would make two masters taking writes; stop it first, or promote with force")
        }
        try await becomeMaster(role: .asyncMaster, persist: true)
    }

    /// Whether a gRPC health check of the broker at `address` answers SERVING within 2 s (a
    /// broker shutting down answers NOT_SERVING; a dead one does not answer).
    private func answersHealthCheck(_ address: String) async -> Bool {
        guard let endpoint = BrokerEndpoint(parsing: address) else { return false }
        var settings = ChannelConfiguration(host: endpoint.host, port: endpoint.port, connectTimeout: .seconds(2))
        settings.backoff = ChannelConfiguration.Backoff(initial: .seconds(2), maximum: .seconds(2))
        let channel = RPCChannel(configuration: settings, logger: logger)
        let answer = try? await Grpc_Health_V1_Health.Client(channel: channel)
            .check(Grpc_Health_V1_HealthCheckRequest(service: ""), options: CallOptions(timeout: .seconds(2)))
        await channel.close()
        return answer?.status == .serving
    }

    /// A slave (or a fenced master) becomes the master: stops following, loads consumer progress
    /// and open transactions from its log, takes writes, registers as broker id 0.
    func becomeMaster(role: BrokerRole, persist: Bool) async throws {
        guard isSlave else { throw BrokerError.badRequest("this broker is already a master") }
        let from = configuration
        // No follower restarts once the flag is down; the store still refuses writes until the
        // state below is loaded from the log.
        slave.store(false, ordering: .sequentiallyConsistent)
        await follower.stop()
        // An operator's promotion takes a new epoch, kept in promotion.json. An etcd election
        // does not: the lease already keeps two members from taking writes at once, and epochs
        // from members' clocks could rank a later master below an earlier one's stale entry.
        let epoch = persist ? Self.newMasterEpoch(after: max(masterEpoch, followedMasterEpochStorage.load(ordering: .relaxed))) : masterEpoch
        do {
            try await consumption.reload()
            try transactions.reload()
            try delays.reload()
            if persist {
                let promotion = Promotion(promotedAt: Date(), formerBrokerId: from.brokerId, formerMaster: from.masterAddress, epoch: epoch)
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                encoder.dateEncodingStrategy = .iso8601
                try AtomicFile.write([UInt8](try encoder.encode(promotion)), to: store.configDirectory + "/" + Self.promotionFile)
            }
        } catch {
            slave.store(true, ordering: .sequentiallyConsistent)
            throw error
        }
        masterEpochStorage.store(epoch, ordering: .relaxed)
        superseded.store(false, ordering: .relaxed)
        configurationStorage.withLock { configuration in
            configuration.role = role
            configuration.brokerId = 0
            configuration.masterAddress = nil
        }
        syncMaster.store(role == .syncMaster, ordering: .relaxed)
        store.isReplicaLog = false
        if let tables = fileTables.withLock({ pending in defer { pending = nil }; return pending }) {
            do {
                try seed(topics: tables.topics, groups: tables.groups)
            } catch {
                logger.error("could not apply the config file's topics and groups", metadata: ["error": "\(error)"])
            }
        }
        logger.notice("promoted to master", metadata: [
            "brokerName": "\(from.brokerName)", "formerBrokerId": "\(from.brokerId)", "formerMaster": "\(from.masterAddress ?? "")",
            "logEnd": "\(store.commitLogMaxOffset)",
        ])
        topicsChanged()
    }

    /// Stops own writes at once, synchronously (the first step of fencing; `becomeSlave` completes
    /// it): after this returns no append of this broker's own succeeds.
    func fenceNow() {
        guard !isSlave else { return }
        syncMaster.store(false, ordering: .relaxed)
        slave.store(true, ordering: .sequentiallyConsistent)
        store.isReplicaLog = true
    }

    /// Graceful shutdown begins: ends the slaves' streams (so the server need not wait for them)
    /// and, with etcd, gives the master's key up now so a slave takes over at once.
    public func beginShutdown() async {
        replication.closeAll()
        await election.withLock { $0 }?.resign()
    }

    /// Stops taking writes and follows `master` (nil: nobody yet), registering under `memberId`.
    /// A master that lost its etcd lease does this before another can be elected (fencing).
    func becomeSlave(of master: String?, memberId: Int32) async {
        fenceNow()
        replication.closeAll()
        let (wasSlave, previous) = configurationStorage.withLock { configuration in
            defer {
                configuration.role = .slave
                configuration.brokerId = memberId
                configuration.masterAddress = master
            }
            return (configuration.role == .slave, configuration.masterAddress)
        }
        if wasSlave, previous == master { return }
        // A follower of the previous master stops; `runReplication` starts one for the new one.
        await follower.stop()
        if !wasSlave {
            logger.warning("no longer the master: taking no writes", metadata: ["following": "\(master ?? "nobody yet")"])
        } else {
            logger.notice("following a new master", metadata: ["master": "\(master ?? "nobody yet")", "previous": "\(previous ?? "none")"])
        }
        topicsChanged()
    }

    /// With etcd endpoints configured, takes part in the broker group's election until the task is
    /// cancelled (then gives up the master's lease, so a slave takes over at once); otherwise
    /// waits for cancellation. Starts once the broker's address is bound.
    public func runFailover() async {
        guard let role = electedRole else {
            while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
            return
        }
        while !hasBoundAddress {
            guard (try? await Task.sleep(for: .milliseconds(20))) != nil else { return }
        }
        let configuration = self.configuration
        let etcd: EtcdClient
        do {
            etcd = try EtcdClient(endpoints: configuration.etcdEndpoints, logger: logger)
        } catch {
            logger.error("cannot use etcd; this broker stays a slave of nobody", metadata: ["error": "\(error)"])
            return
        }
        let election = MasterElection(broker: self, etcd: etcd, role: role, memberId: configuration.brokerId, ttl: configuration.failoverLeaseTTL)
        self.election.withLock { $0 = election }
        await election.run()
        await etcd.close()
    }

    /// What `promotion.json` records.
    struct Promotion: Codable {
        var promotedAt: Date
        var formerBrokerId: Int32
        var formerMaster: String?
        /// The master epoch taken at promotion (absent in files written before epochs: then the
        /// promotion time in milliseconds).
        var epoch: Int64?

        var masterEpoch: Int64 { epoch ?? Broker.milliseconds(promotedAt) }
    }

    /// The master epoch of a promotion recorded by an earlier run, or `nil` when there is none.
    static func recordedPromotionEpoch(in configDirectory: String, logger: Logger) -> Int64? {
        let path = configDirectory + "/" + promotionFile
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        do {
            return try decoder.decode(Promotion.self, from: Data(contentsOf: URL(fileURLWithPath: path))).masterEpoch
        } catch {
            // Still promoted (the file says so). The file's modification time is the promotion's
            // (it is written once) and reads the same at every start, unlike the current time.
            let written = (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date) ?? Date(timeIntervalSince1970: 0)
            logger.error("cannot read the promotion's epoch; taking the file's modification time", metadata: ["path": "\(path)", "error": "\(error)"])
            return milliseconds(written)
        }
    }

    /// Applies a promotion recorded by an earlier run to a configured slave: it starts as the master.
    static func applyPromotion(to configuration: inout BrokerConfiguration) {
        configuration.role = configuration.role == .syncMaster ? .syncMaster : .asyncMaster
        configuration.brokerId = 0
    }

    /// The epoch kept in `followedMasterEpoch`, or 0.
    static func recordedFollowedMasterEpoch(in configDirectory: String) -> Int64 {
        guard let data = FileManager.default.contents(atPath: configDirectory + "/" + followedMasterEpochFile),
              let epoch = Int64(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        else { return 0 }
        return epoch
    }

    /// A slave saw its master's epoch (in a metadata copy): kept, so that a promotion of this
    /// broker, even after a restart, takes an epoch above it whatever this machine's clock says.
    func noteFollowedMasterEpoch(_ epoch: Int64) {
        let previous = followedMasterEpochStorage.load(ordering: .relaxed)
        guard epoch > previous else { return }
        followedMasterEpochStorage.store(epoch, ordering: .relaxed)
        do {
            try AtomicFile.write(Array("\(epoch)\n".utf8), to: store.configDirectory + "/" + Self.followedMasterEpochFile)
        } catch {
            logger.error("cannot keep the followed master's epoch", metadata: ["epoch": "\(epoch)", "error": "\(error)"])
        }
    }

    /// This broker's epoch as a master (0: never promoted by an operator).
    public var masterEpoch: Int64 { masterEpochStorage.load(ordering: .relaxed) }

    /// The epoch a broker takes when it becomes master: the time in milliseconds, and above
    /// `previous` whatever the clock says.
    static func newMasterEpoch(after previous: Int64) -> Int64 {
        max(milliseconds(Date()), previous + 1)
    }

    /// Epochs are milliseconds since 1970.
    fileprivate static func milliseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
    }

    /// A NameServer refused this broker's registration as master: another master of its broker
    /// name, promoted since, is alive. Stops taking writes (as a master cut off from etcd does)
    /// and stays so until an operator restarts it as a slave of that master (its log may hold
    /// sends the new master never got); the registrar has withdrawn it from every NameServer, so
    /// no route leads here. Promoting it again needs `force`.
    /// A master still holding its writes at start (`holdWritesUntilRegistered`) never takes one:
    /// the hold ends closed, and the sends waiting on it are refused.
    public func supersededAsMaster(_ reason: String) {
        // Under the hold's lock: a hold ending at the same moment either sees the flag and stays
        // closed, or opened first and is fenced below.
        writeHold.withLock { superseded.store(true, ordering: .relaxed) }
        if !isSlave {
            fenceNow()
            logger.critical("superseded as master: taking no writes (restart this broker as a slave of the new master)", metadata: ["reason": "\(reason)"])
        }
        writeHold.end()
    }
}

/// Where replication stands on one broker.
public struct ReplicationStatus: Sendable {
    public struct Replica: Sendable {
        public var address: String
        public var brokerId: Int64
        public var acknowledgedOffset: Int64
        public var lagBytes: Int64
        public var connectedAt: Date
        public var lastAcknowledgedAt: Date?
    }

    public var role: BrokerRole
    public var brokerId: Int32
    public var commitLogMaxOffset: Int64
    public var replicas: [Replica] = []
    public var masterAddress = ""
    public var connected = false
    public var masterOffset: Int64 = 0
    public var lagBytes: Int64 = 0
    public var lastError = ""
    /// With etcd failover: the election as this broker sees it.
    public var failover = ""
    /// Why this master takes no writes of its own now (empty when it takes them, and on a slave).
    public var writesRefused = ""
}
