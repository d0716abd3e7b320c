import Atomics
import Foundation
import Logging
import RocketMQNameServer
import RocketMQAPI
import RocketMQStore
import Synchronization

/// A callback kept in a class: a closure kept directly in a `Mutex` gains a reabstraction thunk
/// on every `withLock { $0 }` read (see `OffsetObserver` in the store).
final class ChangeHandler: Sendable {
    let call: @Sendable () -> Void
    init(_ call: @escaping @Sendable () -> Void) { self.call = call }
}

/// RocketMQBroker: the broker's domain — topics and consumer groups, sending into the store,
/// pop-style and offset-based consumption, retries and dead-lettering — behind the public
/// `apache.rocketmq.v2.MessagingService` (`MessagingServiceProvider`).
///
/// `Broker` owns the store, the topic and group tables and the consumption engine. It is
/// thread-safe: tables lock internally, consumption is an actor, the store is thread-safe.
public final class Broker: Sendable {
    /// The current configuration; runtime-updatable keys change through `updateConfiguration(_:)`.
    public var configuration: BrokerConfiguration { configurationStorage.withLock { $0 } }
    let configurationStorage: Mutex<BrokerConfiguration>
    /// When the broker opened its store.
    public let startedAt = Date()
    public let store: MessageStore
    public let topics: ConfigTable<TopicConfig>
    public let groups: ConfigTable<GroupConfig>
    /// Delay messages waiting for their time (see `DelayService`).
    let delays: DelayService
    /// Copies due delay messages to their queues while the broker runs (see `startDelayTimer`).
    let delayTimer = Mutex<Task<Void, Never>?>(nil)
    let consumption: ConsumptionEngine
    let transactions: TransactionService
    let clients = ClientRegistry()
    let arrivals = ArrivalSignal()
    let logger: Logger
    /// A master's slaves and the sends waiting for them.
    let replication = ReplicationHub()
    /// A slave's stream from its master.
    let follower = ReplicaFollower()
    /// See `isSlave`.
    let slave: ManagedAtomic<Bool>
    /// Whether the role is `SYNC_MASTER` (kept beside the configuration for the send path).
    let syncMaster: ManagedAtomic<Bool>
    /// This broker's epoch as a master (`BrokerRegistration.masterEpoch`): 0 until an operator
    /// promotes it, then the time of that in milliseconds since 1970 (from `promotion.json` after
    /// a restart).
    let masterEpochStorage: ManagedAtomic<Int64>
    /// The highest epoch of a master this broker followed as a slave (from its metadata copies,
    /// kept in `config/followedMasterEpoch`): a promotion takes an epoch above it.
    let followedMasterEpochStorage: ManagedAtomic<Int64>
    /// Set when a NameServer refused this master for a promoted one's higher epoch.
    let superseded = ManagedAtomic<Bool>(false)
    /// A master's writes at start, until its NameServers answered its registration.
    let writeHold = WriteHold()
    /// With etcd failover: the kind of master this broker becomes when elected (nil: no election).
    let electedRole: BrokerRole?
    /// With etcd failover: the election, once started (`runFailover`).
    let election = Mutex<MasterElection?>(nil)
    /// Topics and groups of the config file, applied when this broker is first elected master
    /// (a broker that starts as a candidate or slave takes its tables from its master).
    let fileTables = Mutex<(topics: [TopicConfig], groups: [GroupConfig])?>(nil)
    /// The `host:port` put in routes; set once the server is bound.
    private let routeAddressStorage = Mutex<String?>(nil)
    /// Called after a topic is created or changed, so NameServers can hear of it.
    let topicsChangedHandler = Mutex<ChangeHandler?>(nil)
    private let nextQueue = Mutex<UInt64>(0)

    /// Opens the store (recovering it) and the config tables under `configuration.store.dataDirectory`.
    public init(configuration: BrokerConfiguration, logger: Logger = Logger(label: "rocketmq.broker")) throws {
        var configuration = configuration
        let runtimePath = configuration.store.dataDirectory + "/config/brokerConfig.json"
        try RuntimeConfig.loadOverrides(from: runtimePath, into: &configuration)
        let configDirectory = configuration.store.dataDirectory + "/config"
        var masterEpoch: Int64 = 0
        // A promoted broker keeps its epoch whether it restarts with its slave flags (the
        // promotion makes it master again) or with master flags.
        if configuration.etcdEndpoints.isEmpty, let epoch = Self.recordedPromotionEpoch(in: configDirectory, logger: logger) {
            masterEpoch = epoch
            if configuration.role == .slave {
                Self.applyPromotion(to: &configuration)
                logger.notice("this slave was promoted to master in an earlier run: starting as the master (config/promotion.json)", metadata: ["epoch": "\(epoch)"])
            }
        }
        self.masterEpochStorage = ManagedAtomic(masterEpoch)
        self.followedMasterEpochStorage = ManagedAtomic(Self.recordedFollowedMasterEpoch(in: configDirectory))
        try Self.validateReplication(configuration)
        if configuration.etcdEndpoints.isEmpty {
            electedRole = nil
        } else {
            // The election decides: until it does, this broker takes no writes and follows nobody.
            electedRole = configuration.role
            configuration.role = .slave
        }
        self.configurationStorage = Mutex(configuration)
        self.logger = logger
        self.slave = ManagedAtomic(configuration.role == .slave)
        self.syncMaster = ManagedAtomic(configuration.role == .syncMaster)
        var storeConfiguration = configuration.store
        storeConfiguration.storeHost = configuration.advertisedAddress ?? "\(configuration.host):\(configuration.port)"
        // Delay messages and open transactions are read back from their records, maybe after
        // their segment's retention (a delay of days, a shorter `fileReservedTime`): kept until
        // then. Set before the store opens, so that its first retention run already keeps them.
        storeConfiguration.recordsStillNeeded = { store in
            [DelayService.oldestRecordNeeded(in: store), TransactionService.oldestRecordNeeded(in: store)].compactMap { $0 }.min()
        }
        let store = try MessageStore(configuration: storeConfiguration, logger: logger)
        store.isReplicaLog = configuration.role == .slave
        self.store = store
        topics = try ConfigTable(path: store.configDirectory + "/topics.json")
        groups = try ConfigTable(path: store.configDirectory + "/subscriptionGroups.json")
        transactions = try TransactionService(store: store, logger: logger)
        delays = try DelayService(store: store, logger: logger)
        let topics = self.topics
        let arrivals = self.arrivals
        let clients = self.clients
        consumption = try ConsumptionEngine(
            store: store, brokerName: configuration.brokerName, logger: logger,
            maxRenewal: configuration.maxInvisibleDuration,
            isClientAlive: { clients.isAlive($0, within: .seconds(30)) }
        ) { (message, group) throws(BrokerError) in
            try await Broker.deadLetter(message, group: group, store: store, topics: topics, arrivals: arrivals)
        }
        replication.bind(store)
        startDelayTimer()
    }

    /// Checks the role against the broker id and the master's address.
    static func validateReplication(_ configuration: BrokerConfiguration) throws(BrokerError) {
        guard configuration.replicationTimeout > .zero else { throw .badRequest("the replication timeout must be positive") }
        if !configuration.etcdEndpoints.isEmpty {
            guard configuration.role.isMaster else {
                throw .badRequest("with etcd the election decides who is master: --role chooses the kind of master (ASYNC_MASTER or SYNC_MASTER)")
            }
            guard configuration.brokerId > 0 else {
                throw .badRequest("with etcd every member of a broker group needs its own broker id above 0 (it registers as 0 while master)")
            }
            guard configuration.masterAddress == nil else { throw .badRequest("with etcd the election names the master: drop --master") }
            guard configuration.failoverLeaseTTL >= .seconds(3) else { throw .badRequest("the failover lease TTL must be at least 3 s") }
            for endpoint in configuration.etcdEndpoints where EtcdClient.endpoint(endpoint) == nil {
                throw .badRequest("etcd endpoint \(endpoint) is not host:port")
            }
            return
        }
        switch configuration.role {
        case .slave:
            guard configuration.brokerId > 0 else { throw .badRequest("a slave needs a broker id above 0 (0 is the master's)") }
            guard let master = configuration.masterAddress, BrokerEndpoint(parsing: master) != nil else {
                throw .badRequest("a slave needs its master's address (--master host:port)")
            }
        case .asyncMaster, .syncMaster:
            guard configuration.brokerId == 0 else {
                throw .badRequest("a master has broker id 0, not \(configuration.brokerId); slaves set --role SLAVE")
            }
        }
    }

    /// Flushes consumer progress and closes the store (checkpoint written: the next start is a clean one).
    public func shutdown() async {
        await stopDelayTimer()
        await follower.stop()
        do {
            // A slave's snapshot is its master's copy: its own progress state is not maintained.
            if !isSlave { try await consumption.snapshot() }
        } catch {
            logger.error("could not write the consumer progress snapshot", metadata: ["error": "\(error)"])
        }
        // Auto-created topics and groups not yet written in the background.
        for table in [topics.flush, groups.flush] as [() throws -> Void] {
            do { try table() } catch { logger.error("could not write the topic or group table", metadata: ["error": "\(error)"]) }
        }
        store.shutdown()
    }

    /// Writes the consumer progress snapshot if it changed; the executable calls this periodically.
    public func persistProgress() async {
        guard !isSlave else { return }
        do {
            try await consumption.snapshot()
        } catch {
            logger.error("could not write the consumer progress snapshot", metadata: ["error": "\(error)"])
        }
    }

    /// Sends the check-backs that are due: each open transaction past its recovery time goes
    /// to one producer of its topic (over its telemetry stream), which answers with
    /// `EndTransaction`. The executable calls this periodically (every 500 ms).
    public func checkTransactions(now: Date = Date()) async {
        // A master holding its writes could not record what the check-backs change.
        guard !isSlave, !isHoldingWrites else { return }
        let configuration = self.configuration
        let producers = clients.producersByTopic(within: .seconds(30))
        let checks = await transactions.due(
            now: now, interval: configuration.transactionCheckInterval, maxChecks: configuration.transactionCheckMax,
            maxAge: store.retentionPolicy.fileReservedTime, canCheck: { producers[$0] != nil })
        for check in checks {
            guard let producer = producers[check.message.topic]?.randomElement() else { continue }
            let message = check.message.toProtocol(namespace: "", receiptHandle: nil, invisibleDuration: nil, deliveryAttempt: nil)
            producer.outbound.yield(Apache_Rocketmq_V2_TelemetryCommand(
                status: .ok,
                command: .recoverOrphanedTransactionCommand(.init(message: message, transactionId: check.transactionId))))
            logger.info("transaction checked back", metadata: ["topic": "\(check.message.topic)", "transaction": "\(check.transactionId)"])
        }
        transactions.saveMark()
    }

    /// Open transactions: half messages neither committed nor rolled back yet.
    public var openTransactions: Int { transactions.openCount }

    /// Applies runtime changes (admin `UpdateBrokerConfig`), validated, then persisted to
    /// `config/brokerConfig.json` so they survive a restart (they override file and flags).
    /// - Throws: `BrokerError.badRequest` naming the key and the accepted values.
    public func updateConfiguration(_ values: [String: String]) throws {
        try configurationStorage.withLock { current in
            var next = current
            for (key, value) in values { try RuntimeConfig.apply(key: key, value: value, to: &next) }
            try RuntimeConfig.persist(next, to: store.configDirectory + "/brokerConfig.json")
            store.updateRetention(
                fileReservedTime: next.store.fileReservedTime, deleteWhenHour: next.store.deleteWhenHour,
                diskCleanRatio: next.store.diskCleanRatio)
            current = next
        }
        logger.info("broker configuration updated", metadata: ["keys": "\(values.keys.sorted())"])
        topicsChanged()
    }

    // MARK: Routes

    /// Records the address clients should use (after the server bound its port).
    public func setRouteAddress(_ address: String) {
        routeAddressStorage.withLock { $0 = address }
    }

    /// Whether the server bound and the route address is final.
    public var hasBoundAddress: Bool { routeAddressStorage.withLock { $0 != nil } }

    public var routeAddress: String {
        routeAddressStorage.withLock { $0 } ?? configuration.routeAddress(boundPort: configuration.port)
    }

    /// Registers a callback for topic changes (the NameServer registrar's "register now").
    public func onTopicsChanged(_ handler: @escaping @Sendable () -> Void) {
        let box = ChangeHandler(handler)
        topicsChangedHandler.withLock { $0 = box }
    }

    /// Tells the NameServer registrar, if any, that what this broker registers changed.
    func topicsChanged() {
        topicsChangedHandler.withLock { $0 }?.call()
    }

    // MARK: Topics and groups

    /// Creates or updates a topic (admin, config file).
    public func upsertTopic(_ topic: TopicConfig) throws {
        try requireMaster()
        try Self.validate(topicName: topic.name)
        if let problem = topic.queueCountProblem { throw BrokerError.badRequest(problem) }
        if try topics.put(topic.name, topic) {
            logger.info("topic saved", metadata: ["topic": "\(topic.name)", "queues": "\(topic.queueSummary)"])
            topicsChanged()
        }
    }

    /// The config file's topics and groups, at start (or once promoted): each is created if the
    /// broker has none of that name. One it has is kept as it is, since it may have been changed at
    /// runtime (`mqadmin updateTopic`), which a restart must not undo, as with the file's settings;
    /// a difference is logged.
    public func seed(topics fileTopics: [TopicConfig], groups fileGroups: [GroupConfig]) throws {
        for topic in fileTopics {
            if let kept = topics[topic.name] {
                if kept != topic {
                    logger.notice("the config file's topic differs from the broker's, which is kept (change it with mqadmin updateTopic)", metadata: [
                        "topic": "\(topic.name)", "file": "\(topic.queueSummary) queues, permission \(topic.permission.rawValue), \(topic.messageTypes)",
                        "kept": "\(kept.queueSummary) queues, permission \(kept.permission.rawValue), \(kept.messageTypes)"])
                }
                continue
            }
            try upsertTopic(topic)
        }
        for group in fileGroups {
            if let kept = groups[group.name] {
                if kept != group {
                    logger.notice("the config file's group differs from the broker's, which is kept (change it with mqadmin updateSubGroup)", metadata: [
                        "group": "\(group.name)"])
                }
                continue
            }
            try upsertGroup(group)
        }
    }

    /// Deletes the topic: its config, and its messages for every consumer. Each of its queues is
    /// closed at its end (`MessageStore.clearTopic`) before the config goes, so a topic created
    /// again under the name starts empty, also after a restart and on the slaves; its queue
    /// offsets go on from there. The records stay in the CommitLog until retention removes them.
    ///
    /// The config goes first, so that a send checking the topic from then on is refused; one
    /// that passed its check just before and is stored after the queues closed is the window
    /// left (RocketMQ has it too). If the queues cannot be closed, the config is put back.
    public func deleteTopic(_ name: String) throws {
        try requireMaster()
        guard let config = topics[name], try topics.remove(name) else { return }
        do {
            try store.clearTopic(name)
        } catch {
            _ = try? topics.put(name, config)
            throw error
        }
        topicsChanged()
    }

    /// Creates or updates a consumer group.
    public func upsertGroup(_ group: GroupConfig) throws {
        try requireMaster()
        try Self.validate(groupName: group.name)
        try groups.put(group.name, group)
    }

    /// The topic auto-creation makes (and the TBW102 template route advertises): the default
    /// queue count, every message type. Clients ask for a topic's route before their first send
    /// and check their message's type against it, so a topic made by whatever call came first (a
    /// route query, say) must not refuse a transactional producer, nor one made by a
    /// transactional send refuse normal messages.
    func autoCreatedTopic(named name: String) -> TopicConfig {
        TopicConfig(name: name, queueCount: configuration.defaultQueueCount, messageTypes: ["NORMAL", "FIFO", "DELAY", "TRANSACTION"])
    }

    /// The topic, auto-created when the broker allows it.
    /// - Throws: `.topicNotFound` otherwise.
    func topic(named name: String) throws(BrokerError) -> TopicConfig {
        if let topic = topics[name] { return topic }
        // A name no topic can have is ILLEGAL_TOPIC whether or not this broker auto-creates.
        try Self.validate(topicName: name)
        guard configuration.autoCreateTopics, !isSlave else { throw .topicNotFound(name) }
        do {
            let created = try topics.putIfAbsent(name) { autoCreatedTopic(named: name) }
            logger.info("topic auto-created", metadata: ["topic": "\(name)", "types": "\(created.messageTypes)"])
            topicsChanged()
            return created
        } catch {
            throw .storage("cannot save topic \(name): \(error)")
        }
    }

    /// The group, auto-created when the broker allows it.
    func group(named name: String, fifo: Bool? = nil) throws(BrokerError) -> GroupConfig {
        if let group = groups[name] { return group }
        try Self.validate(groupName: name)
        guard configuration.autoCreateGroups, !isSlave else { throw .groupNotFound(name) }
        do {
            return try groups.putIfAbsent(name) {
                GroupConfig(name: name, maxDeliveryAttempts: configuration.defaultMaxDeliveryAttempts, fifo: fifo ?? false)
            }
        } catch {
            throw .storage("cannot save group \(name): \(error)")
        }
    }

    static func validate(topicName name: String) throws(BrokerError) {
        if let problem = TopicRoute.nameProblem(name) { throw .illegalTopic(problem) }
    }

    static func validate(groupName name: String) throws(BrokerError) {
        guard !name.isEmpty, name.utf8.count <= 255,
              name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "%|-_".contains($0)) })
        else { throw .illegalGroup("illegal consumer group \(name.debugDescription): 1-255 characters of [A-Za-z0-9%|_-]") }
    }

    // MARK: Sending

    /// A queue for a message, among the topic's write queues: by message group (FIFO); else the
    /// queue the client chose, when it takes writes; else round-robin.
    ///
    /// A `requested` 0 is not a choice unless `clientChoosesQueues`: it is proto3's default, the
    /// value of a `queue_id` never set, and the official Python client leaves it unset (RocketMQ
    /// 5's proxy ignores the field altogether). Taken as queue 0, every message of such a
    /// producer landed on queue 0.
    func queue(for topic: TopicConfig, requested: Int32, messageGroup: String?, clientChoosesQueues: Bool) -> Int32 {
        if let group = messageGroup, !group.isEmpty {
            return Int32(truncatingIfNeeded: Int(bitPattern: UInt(truncatingIfNeeded: stableHash(group)) % UInt(topic.writeQueues)))
        }
        if requested > 0 || (requested == 0 && clientChoosesQueues), requested < topic.writeQueues { return requested }
        let next = nextQueue.withLock { value -> UInt64 in
            value &+= 1
            return value
        }
        return Int32(next % UInt64(topic.writeQueues))
    }

    /// Why a queue a client chose itself cannot take the message, or nil. A client that picks
    /// its queues (ours) names the queue in its receipt, so the broker may not move the message
    /// elsewhere: a queue past the write count (a route older than an `updateTopic -w`) is
    /// refused, and the client tries another queue with a fresh route. Messages of a group are
    /// placed by their group, whatever the client asked.
    func chosenQueueProblem(_ topic: TopicConfig, requested: Int32, messageGroup: String?, clientChoosesQueues: Bool) -> BrokerError? {
        guard clientChoosesQueues, messageGroup?.isEmpty ?? true, requested >= topic.writeQueues || requested < 0 else { return nil }
        return .queueNotWritable("queue \(requested) of topic \(topic.name) takes no writes: the topic has \(topic.writeQueues) write queues; refresh its route")
    }

    private func stableHash(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        return hash
    }

    /// The largest message body accepted (`BrokerConfiguration.maxBodySize`), without copying
    /// the whole configuration.
    var maxBodySize: Int { configurationStorage.withLock { $0.maxBodySize } }

    /// Appends an encoded message to the store and wakes long-polling receivers of the topic.
    func append(_ message: EncodedMessage) async throws(BrokerError) -> AppendResult {
        let result: AppendResult
        do {
            result = try await store.append(message)
            arrivals.signal(message.topic, queueId: message.queueId)
        } catch {
            throw brokerError(error)
        }
        try await awaitReplica(of: result)
        return result
    }

    /// On a sync master, waits until a slave confirmed the record `result` stored.
    func awaitReplica(of result: AppendResult) async throws(BrokerError) {
        if let timeout = syncReplicationTimeout {
            try await replication.waitForReplica(upTo: result.physicalOffset + Int64(result.wroteBytes), timeout: timeout)
        }
    }

    /// How long a send waits for a slave: nil unless this is a sync master (one relaxed load per
    /// send otherwise).
    var syncReplicationTimeout: Duration? {
        guard syncMaster.load(ordering: .relaxed) else { return nil }
        return configurationStorage.withLock { $0.role == .syncMaster ? $0.replicationTimeout : nil }
    }

    /// `append(_: EncodedMessage)` with its outcome passed to `completion` (see
    /// `MessageStore.append(_:completion:)`: with sync flush it runs on the store's flusher thread).
    func append(_ message: EncodedMessage, completion: @escaping @Sendable (Result<AppendResult, BrokerError>) -> Void) {
        append(message, onWritten: { _ in }, completion: completion)
    }

    /// `append(_:completion:)` that first tells `onWritten` once the record is written (see
    /// `MessageStore.append(_:onWritten:completion:)`).
    func append(
        _ message: EncodedMessage, onWritten: (AppendResult) -> Void,
        completion: @escaping @Sendable (Result<AppendResult, BrokerError>) -> Void
    ) {
        let replicaTimeout = syncReplicationTimeout
        store.append(message, onWritten: onWritten) { outcome in
            self.finishAppend(of: message, outcome, replicaTimeout: replicaTimeout, completion: completion)
        }
    }

    /// What follows a store append: long polls of the topic woken, a sync master's slave waited for.
    func finishAppend(
        of message: EncodedMessage, _ outcome: Result<AppendResult, StoreError>, replicaTimeout: Duration?,
        completion: @escaping @Sendable (Result<AppendResult, BrokerError>) -> Void
    ) {
        switch outcome {
        case .success(let result):
            arrivals.signal(message.topic, queueId: message.queueId)
            guard let replicaTimeout else { return completion(.success(result)) }
            replication.whenReplicated(upTo: result.physicalOffset + Int64(result.wroteBytes), timeout: replicaTimeout) { error in
                completion(error.map { .failure($0) } ?? .success(result))
            }
        case .failure(let error):
            completion(.failure(brokerError(error)))
        }
    }

    /// `append(_: EncodedMessage)` without suspending, when the store's appends complete once
    /// written (async flush); `nil` (nothing appended) when they wait for a sync.
    func appendWithoutWaiting(_ message: EncodedMessage) throws(BrokerError) -> AppendResult? {
        // A sync master's sends wait for a slave.
        if syncReplicationTimeout != nil { return nil }
        do {
            guard let result = try store.appendWithoutWaiting(message) else { return nil }
            arrivals.signal(message.topic, queueId: message.queueId)
            return result
        } catch {
            throw brokerError(error)
        }
    }

    /// Appends to the store and wakes long-polling receivers of the topic.
    func append(_ message: MessageToAppend) async throws(BrokerError) -> AppendResult {
        let encoded: EncodedMessage
        do { encoded = try store.encode(message) } catch { throw BrokerError(error) }
        return try await append(encoded)
    }

    /// Appends a copy of `message` to `group`'s retry topic, so that group alone receives it
    /// again under `originTopic`; wakes the group's long polls on that topic.
    func redeliver(_ message: StoredMessage, to group: String, originTopic: String) async throws(BrokerError) -> AppendResult {
        var properties = message.properties
        properties[StoredProperty.retryOriginTopic] = originTopic
        properties[StoredProperty.deadLetterOriginTopic] = nil
        properties[StoredProperty.deadLetterOriginMessageId] = nil
        let result = try await Self.appendCopy(
            of: message, to: SystemTopic.retry(group: group), properties: properties, store: store, topics: topics, arrivals: arrivals)
        arrivals.signal(originTopic)
        return result
    }

    /// Moves a message to `%DLQ%<group>` (created on demand, one queue, read-write).
    static func deadLetter(
        _ message: StoredMessage, group: String, store: MessageStore, topics: ConfigTable<TopicConfig>, arrivals: ArrivalSignal
    ) async throws(BrokerError) {
        var properties = message.properties
        properties[StoredProperty.deadLetterOriginTopic] = message.properties[StoredProperty.retryOriginTopic] ?? message.topic
        properties[StoredProperty.retryOriginTopic] = nil
        properties[StoredProperty.deadLetterOriginMessageId] = message.messageId
        _ = try await appendCopy(
            of: message, to: SystemTopic.deadLetter(group: group), properties: properties, store: store, topics: topics, arrivals: arrivals)
    }

    /// Appends `message` with `properties` (minus any delay: copies are due at once) to queue 0 of
    /// a broker-made topic, creating it on first use, and wakes that topic's long polls.
    private static func appendCopy(
        of message: StoredMessage, to topic: String, properties: [String: String],
        store: MessageStore, topics: ConfigTable<TopicConfig>, arrivals: ArrivalSignal
    ) async throws(BrokerError) -> AppendResult {
        do {
            _ = try topics.putIfAbsent(topic) { TopicConfig(name: topic, queueCount: 1, messageTypes: ["NORMAL", "FIFO", "DELAY"]) }
        } catch {
            throw .storage("cannot create \(topic): \(error)")
        }
        var properties = properties
        properties[StoredProperty.deliveryTime] = nil
        let copy = MessageToAppend(
            topic: topic, queueId: 0, body: message.body, properties: properties, flags: message.flags,
            bornTimestamp: message.bornTimestamp, bornHost: message.bornHost, reconsumeTimes: message.reconsumeTimes)
        do {
            let result = try await store.append(copy)
            arrivals.signal(topic, queueId: copy.queueId)
            return result
        } catch {
            throw BrokerError(error)
        }
    }
}
