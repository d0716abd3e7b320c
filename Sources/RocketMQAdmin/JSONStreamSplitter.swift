/// Cuts a byte stream of concatenated JSON documents into complete documents as the bytes arrive,
/// so a streaming call can send each request as soon as it is typed or piped (`mqadmin -d @`).
///
/// It only finds where documents end (balanced brackets outside strings, a closing quote, or the
/// whitespace after a bare scalar); ``JSONParser`` validates each one. Splits happen at ASCII bytes,
/// so multi-byte UTF-8 characters are never cut. Value type; not thread-safe.
public struct JSONStreamSplitter: Sendable {
    private var buffer: [UInt8] = []
    private var index = 0
    private var start: Int?
    private var depth = 0
    private var inString = false
    private var escaped = false
    private var isScalar = false

    public init() {}

    /// Adds bytes; returns the documents they complete, in order.
    public mutating func append(_ bytes: [UInt8]) -> [String] {
        buffer += bytes
        var documents: [String] = []
        while index < buffer.count {
            let byte = buffer[index]
            guard let begin = start else {
                if !Self.isSpace(byte) {
                    start = index
                    isScalar = byte != UInt8(ascii: "{") && byte != UInt8(ascii: "[") && byte != UInt8(ascii: "\"")
                    inString = byte == UInt8(ascii: "\"")
                    depth = inString || isScalar ? 0 : 1
                }
                index += 1
                continue
            }
            if isScalar {
                if Self.isSpace(byte) || byte == UInt8(ascii: "{") || byte == UInt8(ascii: "[") || byte == UInt8(ascii: "\"") {
                    documents.append(String(decoding: buffer[begin..<index], as: UTF8.self))
                    start = nil
                    continue  // this byte may begin the next document
                }
            } else if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                    if depth == 0 {
                        documents.append(String(decoding: buffer[begin...index], as: UTF8.self))
                        start = nil
                    }
                }
            } else if byte == UInt8(ascii: "\"") {
                inString = true
            } else if byte == UInt8(ascii: "{") || byte == UInt8(ascii: "[") {
                depth += 1
            } else if byte == UInt8(ascii: "}") || byte == UInt8(ascii: "]") {
                depth -= 1
                if depth == 0 {
                    documents.append(String(decoding: buffer[begin...index], as: UTF8.self))
                    start = nil
                }
            }
            index += 1
        }
        // Drop what is done with, so a long stream does not accumulate.
        let keep = start ?? index
        if keep > 0 {
            buffer.removeFirst(keep)
            index -= keep
            if start != nil { start = 0 }
        }
        return documents
    }

    /// The unfinished rest at the end of the stream (a bare scalar, or an incomplete document that
    /// ``JSONParser`` will reject with a clear message); `nil` when only whitespace is left.
    public mutating func finish() -> String? {
        guard let begin = start else { return nil }
        start = nil
        return String(decoding: buffer[begin...], as: UTF8.self)
    }

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09
    }
}
