import Foundation

/// A pull consumer's next offset per queue, kept in memory and, when a file is given, saved
/// after every change (temp file + rename, so a crash leaves the old or the new version).
actor PositionStore {
    private var offsets: [String: Int64] = [:]
    let file: URL?

    init(file: URL?) throws(RocketMQError) {
        self.file = file
        guard let file, FileManager.default.fileExists(atPath: file.path) else { return }
        do {
            offsets = try JSONDecoder().decode([String: Int64].self, from: Data(contentsOf: file))
        } catch {
            throw .invalidArgument("cannot read the offset file \(file.path): \(error)")
        }
    }

    func offset(of queue: MessageQueueID) -> Int64? { offsets[queue.description] }

    func set(_ offset: Int64, of queue: MessageQueueID) throws(RocketMQError) {
        guard offsets[queue.description] != offset else { return }
        offsets[queue.description] = offset
        try save()
    }

    private func save() throws(RocketMQError) {
        guard let file else { return }
        let temporary = file.appendingPathExtension("tmp")
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            try encoder.encode(offsets).write(to: temporary)
        } catch {
            throw .invalidArgument("cannot write the offset file \(temporary.path): \(error)")
        }
        guard rename(temporary.path, file.path) == 0 else {
            throw .invalidArgument("cannot rename \(temporary.path) to \(file.path): errno \(errno)")
        }
    }
}
