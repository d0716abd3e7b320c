import RocketMQAPI
import RocketProto
import RocketRPC

/// A `SendMessageRequest` as it came off the wire: its bytes (one copy, the handler outlives
/// the connection's buffer) and, when `WireSendMessage` can read it, its single message.
/// Requests it cannot read are decoded by protobuf-c right away, so malformed bytes fail
/// exactly as they do for every other method.
struct SendMessageRequestBytes: ProtoMessage {
    static let protoMessageName = Apache_Rocketmq_V2_SendMessageRequest.protoMessageName

    let bytes: [UInt8]
    /// The message, when the request carries one `WireSendMessage` reads.
    let message: WireSendMessage?
    private let decoded: Apache_Rocketmq_V2_SendMessageRequest?

    init() {
        bytes = []
        message = nil
        decoded = Apache_Rocketmq_V2_SendMessageRequest()
    }

    init(serializedBytes: UnsafeRawBufferPointer) throws {
        bytes = Array(serializedBytes)
        message = WireSendMessage.read(request: serializedBytes)
        decoded = message == nil ? try Apache_Rocketmq_V2_SendMessageRequest(serializedBytes: serializedBytes) : nil
    }

    /// The request as generated code sees it.
    func request() throws -> Apache_Rocketmq_V2_SendMessageRequest {
        if let decoded { return decoded }
        do {
            return try Apache_Rocketmq_V2_SendMessageRequest(serializedBytes: bytes)
        } catch {
            // What the router answers for a request protobuf-c cannot decode.
            throw RPCError(code: .internalError, message: "\(error)")
        }
    }

    func serializedBytes() -> [UInt8] { bytes }

    static func == (a: Self, b: Self) -> Bool { a.bytes == b.bytes }
}

/// A `SendMessageResponse`, already encoded. The common answer — one message stored — is
/// written byte by byte (`stored(messageId:offset:)`); every other one is the generated
/// message's encoding.
struct SendMessageResponseBytes: ProtoMessage {
    static let protoMessageName = Apache_Rocketmq_V2_SendMessageResponse.protoMessageName

    let bytes: [UInt8]

    init() { bytes = [] }

    init(serializedBytes: UnsafeRawBufferPointer) throws { bytes = Array(serializedBytes) }

    init(_ response: Apache_Rocketmq_V2_SendMessageResponse) { bytes = response.serializedBytes() }

    /// `Status { code: OK, message: "OK" }` (`Apache_Rocketmq_V2_Status.ok`), encoded.
    private static let okStatus: [UInt8] = Apache_Rocketmq_V2_Status.ok.serializedBytes()

    /// The encoding of `SendMessageResponse(status: .ok, entries: [SendResultEntry(status: .ok,
    /// messageId: messageId, offset: offset)])`, as protobuf-c writes it: fields in number
    /// order, empty strings and zero numbers left out.
    static func stored(messageId: UnsafeRawBufferPointer, offset: Int64) -> SendMessageResponseBytes {
        let status = okStatus
        var entryCount = 1 + varintSize(UInt64(status.count)) + status.count
        if !messageId.isEmpty { entryCount += 1 + varintSize(UInt64(messageId.count)) + messageId.count }
        if offset != 0 { entryCount += 1 + varintSize(UInt64(bitPattern: offset)) }
        let total = 1 + varintSize(UInt64(status.count)) + status.count + 1 + varintSize(UInt64(entryCount)) + entryCount
        let bytes = ByteArray.make(count: total) { buffer in
            // A cursor, not nested functions capturing the position: a nested function passed
            // as a closure (`withUnsafeBytes(raw)`) boxes what it captures, and every write
            // then paid a dynamic exclusivity check.
            var out = ProtoWriter(buffer: buffer)
            out.byte(0x0A)  // 1: status
            out.varint(UInt64(status.count))
            status.withUnsafeBytes { out.raw($0) }
            out.byte(0x12)  // 2: entries
            out.varint(UInt64(entryCount))
            out.byte(0x0A)  //   1: status
            out.varint(UInt64(status.count))
            status.withUnsafeBytes { out.raw($0) }
            if !messageId.isEmpty {
                out.byte(0x12)  //   2: message_id
                out.varint(UInt64(messageId.count))
                out.raw(messageId)
            }
            if offset != 0 {
                out.byte(0x20)  //   4: offset
                out.varint(UInt64(bitPattern: offset))
            }
            assert(out.at == total, "the response's size was miscounted")
        }
        return SendMessageResponseBytes(bytes: bytes)
    }

    private init(bytes: [UInt8]) { self.bytes = bytes }

    private static func varintSize(_ value: UInt64) -> Int {
        var size = 1
        var v = value >> 7
        while v != 0 { size += 1; v >>= 7 }
        return size
    }

    func serializedBytes() -> [UInt8] { bytes }
}

/// Writes protobuf bytes front to back into a buffer sized for them.
private struct ProtoWriter {
    let buffer: UnsafeMutableBufferPointer<UInt8>
    private(set) var at = 0

    init(buffer: UnsafeMutableBufferPointer<UInt8>) { self.buffer = buffer }

    mutating func byte(_ b: UInt8) {
        buffer[at] = b
        at += 1
    }

    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            byte(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        byte(UInt8(v))
    }

    mutating func raw(_ source: UnsafeRawBufferPointer) {
        guard let base = source.baseAddress, !source.isEmpty else { return }
        UnsafeMutableRawPointer(buffer.baseAddress! + at).copyMemory(from: base, byteCount: source.count)
        at += source.count
    }
}
