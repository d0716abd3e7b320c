import Foundation

/// Standard output, unbuffered: each line reaches a pipe as soon as it is written, so a streaming
/// call's responses show up while the call runs (grpcurl writes the same way). Swift's `print`
/// buffers when stdout is not a terminal.
enum Output {
    /// Writes `text` and `terminator`. When the reader has gone away (`mqadmin … | head -1`), exits
    /// quietly with status 1 instead of trapping: there is nobody left to tell.
    static func write(_ text: String = "", terminator: String = "\n") {
        do {
            try FileHandle.standardOutput.write(contentsOf: Data((text + terminator).utf8))
        } catch {
            Foundation.exit(ExitStatus.failure)
        }
    }

    /// Writes `text` to standard error as is; a closed stderr is ignored.
    static func error(_ text: String) {
        try? FileHandle.standardError.write(contentsOf: Data(text.utf8))
    }
}
