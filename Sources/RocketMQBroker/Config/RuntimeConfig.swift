import Foundation
import RocketMQStore

/// The broker settings an operator may read as text and change at runtime, and where changes
/// are kept (`config/brokerConfig.json`).
public enum RuntimeConfig {
    /// Keys `UpdateBrokerConfig` accepts; their changes apply at once.
    public static let updatableKeys = [
        "autoCreateTopics", "autoCreateGroups", "defaultQueueCount", "maxBodySize",
        "maxLongPollingTimeoutSeconds", "defaultMaxDeliveryAttempts", "maxReceiveBatchSize",
        "fileReservedHours", "deleteWhenHour", "diskCleanRatio",
        "transactionTimeoutMillis", "transactionCheckIntervalMillis", "transactionCheckMax",
    ]

    /// Every setting as text, for `GetBrokerConfig`.
    public static func values(of configuration: BrokerConfiguration) -> [String: String] {
        [
            "clusterName": configuration.clusterName,
            "brokerName": configuration.brokerName,
            "brokerId": String(configuration.brokerId),
            "brokerRole": configuration.role.rawValue,
            "masterAddress": configuration.masterAddress ?? "",
            "replicationTimeoutMillis": String(configuration.replicationTimeout.wholeMilliseconds),
            "registrationHoldSeconds": String(configuration.registrationHold.components.seconds),
            "host": configuration.host,
            "port": String(configuration.port),
            "advertisedAddress": configuration.advertisedAddress ?? "",
            "nameServers": configuration.nameServers.joined(separator: ";"),
            "dataDirectory": configuration.store.dataDirectory,
            "flushMode": configuration.store.flushMode.rawValue,
            "commitLogSegmentSize": String(configuration.store.commitLogSegmentSize),
            "pageCacheWindowMB": configuration.store.pageCacheWindow.map { String($0 >> 20) } ?? "0",
            "fileReservedHours": String(configuration.store.fileReservedTime.components.seconds / 3600),
            "deleteWhenHour": String(configuration.store.deleteWhenHour),
            "diskCleanRatio": String(configuration.store.diskCleanRatio),
            "autoCreateTopics": String(configuration.autoCreateTopics),
            "autoCreateGroups": String(configuration.autoCreateGroups),
            "defaultQueueCount": String(configuration.defaultQueueCount),
            "maxBodySize": String(configuration.maxBodySize),
            "maxLongPollingTimeoutSeconds": String(configuration.maxLongPollingTimeout.components.seconds),
            "defaultMaxDeliveryAttempts": String(configuration.defaultMaxDeliveryAttempts),
            "maxReceiveBatchSize": String(configuration.maxReceiveBatchSize),
            "transactionTimeoutMillis": String(configuration.transactionTimeout.wholeMilliseconds),
            "transactionCheckIntervalMillis": String(configuration.transactionCheckInterval.wholeMilliseconds),
            "transactionCheckMax": String(configuration.transactionCheckMax),
            "adminAuth": configuration.adminToken == nil ? "off" : "on",
        ]
    }

    /// Applies runtime keys (a config file's `settings`) to `configuration`.
    /// - Throws: `BrokerError.badRequest` naming the key and what it accepts.
    public static func apply(_ values: [String: String], to configuration: inout BrokerConfiguration) throws {
        for (key, value) in values.sorted(by: { $0.key < $1.key }) {
            guard updatableKeys.contains(key) else {
                throw BrokerError.badRequest("unknown setting \(key.debugDescription) (settings: \(updatableKeys.joined(separator: ", ")))")
            }
            try apply(key: key, value: value, to: &configuration)
        }
    }

    static func apply(key: String, value: String, to configuration: inout BrokerConfiguration) throws {
        func bool() throws -> Bool {
            guard let parsed = Bool(value.lowercased()) else { throw BrokerError.badRequest("\(key) takes true or false, not \(value.debugDescription)") }
            return parsed
        }
        func int(_ range: ClosedRange<Int>) throws -> Int {
            guard let parsed = Int(value), range.contains(parsed) else {
                throw BrokerError.badRequest("\(key) takes an integer in \(range.lowerBound)...\(range.upperBound), not \(value.debugDescription)")
            }
            return parsed
        }
        switch key {
        case "autoCreateTopics": configuration.autoCreateTopics = try bool()
        case "autoCreateGroups": configuration.autoCreateGroups = try bool()
        case "defaultQueueCount": configuration.defaultQueueCount = Int32(try int(1...1024))
        case "maxBodySize": configuration.maxBodySize = try int(1...(8 << 20))
        case "maxLongPollingTimeoutSeconds": configuration.maxLongPollingTimeout = .seconds(try int(0...300))
        case "defaultMaxDeliveryAttempts": configuration.defaultMaxDeliveryAttempts = Int32(try int(1...1000))
        case "maxReceiveBatchSize": configuration.maxReceiveBatchSize = Int32(try int(1...10_000))
        case "transactionTimeoutMillis": configuration.transactionTimeout = .milliseconds(try int(100...86_400_000))
        case "transactionCheckIntervalMillis": configuration.transactionCheckInterval = .milliseconds(try int(100...86_400_000))
        case "transactionCheckMax": configuration.transactionCheckMax = try int(1...1000)
        case "fileReservedHours": configuration.store.fileReservedTime = .seconds(3600 * (try int(1...24 * 365)))
        case "deleteWhenHour": configuration.store.deleteWhenHour = try int(0...23)
        case "diskCleanRatio":
            guard let ratio = Double(value), ratio > 0, ratio < configuration.store.diskHardLimitRatio else {
                throw BrokerError.badRequest("diskCleanRatio takes a number in (0, \(configuration.store.diskHardLimitRatio)), not \(value.debugDescription)")
            }
            configuration.store.diskCleanRatio = ratio
        default:
            if values(of: configuration)[key] != nil {
                throw BrokerError.badRequest("\(key) cannot change at runtime; set it in the config file and restart (runtime keys: \(updatableKeys.joined(separator: ", ")))")
            }
            throw BrokerError.badRequest("unknown broker setting \(key.debugDescription) (runtime keys: \(updatableKeys.joined(separator: ", ")))")
        }
    }

    static func persist(_ configuration: BrokerConfiguration, to path: String) throws {
        let all = values(of: configuration)
        let kept = Dictionary(uniqueKeysWithValues: updatableKeys.compactMap { key in all[key].map { (key, $0) } })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write([UInt8](try encoder.encode(kept)), to: path)
    }

    static func loadOverrides(from path: String, into configuration: inout BrokerConfiguration) throws {
        guard let data = FileManager.default.contents(atPath: path) else { return }
        let values: [String: String]
        do {
            values = try JSONDecoder().decode([String: String].self, from: data)
        } catch {
            throw BrokerError.badConfigFile(path: path, reason: "\(error)")
        }
        for (key, value) in values { try apply(key: key, value: value, to: &configuration) }
    }
}
