import Dispatch
import Foundation
import Logging
import RocketMQStore
import Synchronization

/// A name-keyed table of configs persisted as one JSON file, rewritten atomically
/// (temp file, fsync, rename, fsync dir) after every change.
///
/// `put`, `remove` and `replaceAll` (admin calls, the config file, a slave's copy) return once
/// the file holds the change. `putIfAbsent` (auto-creation, in the send and receive paths) returns
/// at once and the file is written on a background queue: its fsyncs (2–10 ms here) would
/// otherwise stall every connection of the event loop that happened to auto-create. Until then a
/// crash loses only an auto-created entry, which the next use creates again with the same
/// defaults; `flush()` (the broker's shutdown) writes what is pending.
///
/// Thread-safe: a mutex around the map; writes of the file are serialized by a second one, and
/// each writes the latest table, so the file never goes back to an older one.
public final class ConfigTable<Value: Codable & Sendable & Equatable>: Sendable {
    private let path: String
    private struct Table {
        var entries: [String: Value]
        /// Bumped by every change; the file holds `written`.
        var version: UInt64 = 0
        var flushQueued = false
    }
    private let table: Mutex<Table>
    /// Held while the file is written; the version it holds.
    private let file = Mutex<UInt64>(0)
    private let background = DispatchQueue(label: "rocketmq.config-table", qos: .utility)

    /// Loads `path` if it exists.
    /// - Throws: `BrokerError.badConfigFile` when the file exists but is not valid JSON of this shape.
    public init(path: String) throws {
        self.path = path
        if let data = FileManager.default.contents(atPath: path) {
            do {
                table = Mutex(Table(entries: try JSONDecoder().decode([String: Value].self, from: data)))
            } catch {
                throw BrokerError.badConfigFile(path: path, reason: "\(error)")
            }
        } else {
            table = Mutex(Table(entries: [:]))
        }
    }

    public subscript(name: String) -> Value? { table.withLock { $0.entries[name] } }

    public var all: [Value] {
        table.withLock { table in table.entries.keys.sorted().compactMap { table.entries[$0] } }
    }

    /// Inserts or replaces and persists. Returns whether anything changed.
    @discardableResult
    public func put(_ name: String, _ value: Value) throws -> Bool {
        try change { entries in
            guard entries[name] != value else { return false }
            entries[name] = value
            return true
        }
    }

    /// Inserts only if absent; returns the value now in the table. An insert is written to the
    /// file soon, in the background (see the type's comment), not before this returns.
    public func putIfAbsent(_ name: String, _ make: () -> Value) throws -> Value {
        let (value, queue) = table.withLock { table -> (Value, Bool) in
            if let existing = table.entries[name] { return (existing, false) }
            let value = make()
            table.entries[name] = value
            table.version += 1
            defer { table.flushQueued = true }
            return (value, !table.flushQueued)
        }
        if queue {
            background.async { [self] in
                table.withLock { $0.flushQueued = false }
                do {
                    try flush()
                } catch {
                    // The entry stays in the table; the next change writes it again.
                    Logger(label: "rocketmq.broker").error("cannot write an auto-created entry", metadata: ["path": "\(path)", "error": "\(error)"])
                }
            }
        }
        return value
    }

    /// Removes and persists. Returns whether it existed.
    @discardableResult
    public func remove(_ name: String) throws -> Bool {
        try change { $0.removeValue(forKey: name) != nil }
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
        return try change { entries in
            guard entries != incoming else { return false }
            entries = incoming
            return true
        }
    }

    /// Applies `edit`, which returns whether it changed anything, and if so writes the file
    /// before returning.
    private func change(_ edit: (inout [String: Value]) -> Bool) throws -> Bool {
        let changed = table.withLock { table in
            guard edit(&table.entries) else { return false }
            table.version += 1
            return true
        }
        if changed { try flush() }
        return changed
    }

    /// Writes the table to the file unless the file already holds its latest version. Returns
    /// once the file holds every change made before the call.
    public func flush() throws {
        try file.withLock { written in
            let (entries, version) = table.withLock { ($0.entries, $0.version) }
            guard version > written else { return }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try AtomicFile.write([UInt8](try encoder.encode(entries)), to: path)
            written = version
        }
    }
}
