import Foundation

/// Standard output, unbuffered: each line reaches a pipe as soon as it is written, so a streaming
/// call's responses show up while the call runs (grpcurl writes the same way). Swift's `print`
/// buffers when stdout is not a terminal.
enum Output {
    static func write(_ text: String = "", terminator: String = "\n") {
        FileHandle.standardOutput.write(Data((text + terminator).utf8))
    }
}
