import Foundation

/// Standard input as an async stream of chunks, read on its own thread so a blocking `read` never
/// holds a cooperative-pool thread. Used for `-d @` with streaming calls, where each request is sent
/// as soon as it is complete.
enum StandardInput {
    static func chunks() -> AsyncStream<[UInt8]> {
        AsyncStream { continuation in
            let thread = Thread {
                while true {
                    let data = FileHandle.standardInput.availableData
                    if data.isEmpty {
                        continuation.finish()
                        return
                    }
                    continuation.yield([UInt8](data))
                }
            }
            thread.name = "mqadmin-stdin"
            thread.start()
        }
    }
}
