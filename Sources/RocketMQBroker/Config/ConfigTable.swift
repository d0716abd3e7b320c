import Foundation
import RocketMQStore
import Synchronization

/// A name-keyed table of configs persisted as one JSON file, rewritten atomically
/// (temp file, fsync, rename, fsync dir) on every change.
///
/// Thread-safe (a mutex around the map); the file write happens under the lock so that the
/// file always reflects one consistent table.
public final class ConfigTable<Value: Codable & Sendable & Equatable>: Sendable {
    private let path: String
    private let entries: Mutex<[String: Value]>

    /// Loads `path` if it exists.
    /// - Throws: `BrokerError.badConfigFile` when the file exists but is not valid JSON of this shape.
    public init(path: String) throws {
        self.path = path
        if let data = FileManager.default.contents(atPath: path) {
            do {
                entries = Mutex(try JSONDecoder().decode([String: Value].self, from: data))
            } catch {
                throw BrokerError.badConfigFile(path: path, reason: "\(error)")
            }
        } else {
            entries = Mutex([:])
        }
    }

    public subscript(name: String) -> Value? { entries.withLock { $0[name] } }

    public var all: [Value] {
        entries.withLock { table in table.keys.sorted().compactMap { table[$0] } }
    }

    /// Inserts or replaces and persists. Returns whether anything changed.
    @discardableResult
    public func put(_ name: String, _ value: Value) throws -> Bool {
        try entries.withLock { table in
            guard table[name] != value else { return false }
            var next = table
            next[name] = value
            try persist(next)
            table = next
            return true
        }
    }

    /// Inserts only if absent; returns the value now in the table.
    public func putIfAbsent(_ name: String, _ make: () -> Value) throws -> Value {
        try entries.withLock { table in
            if let existing = table[name] { return existing }
            var next = table
            let value = make()
            next[name] = value
            try persist(next)
            table = next
            return value
        }
    }

    /// Removes and persists. Returns whether it existed.
    @discardableResult
    public func remove(_ name: String) throws -> Bool {
        try entries.withLock { table in
            guard table[name] != nil else { return false }
            var next = table
            next[name] = nil
            try persist(next)
            table = next
            return true
        }
    }

    /// Replaces the whole table with `json` (the file of another broker: a slave copying its
    /// master's) and persists it. Returns whether anything changed.
    /// - Throws: `BrokerError.badConfigFile` when `json` is not a table of this shape.
    @discardableResult
    public func replaceAll(json: [UInt8]) throws -> Bool {
        let incoming: [String: Value]
        do {
            incoming = try JSONDecoder().decode([String: Value].self, from: Data(json))
        } catch {
            throw BrokerError.badConfigFile(path: path + " (replicated)", reason: "\(error)")
        }
        return try entries.withLock { table in
            guard table != incoming else { return false }
            try persist(incoming)
            table = incoming
            return true
        }
    }

    private func persist(_ table: [String: Value]) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write([UInt8](try encoder.encode(table)), to: path)
    }
}
