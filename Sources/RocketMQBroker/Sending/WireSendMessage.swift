import RocketProto

/// One `apache.rocketmq.v2.Message` of a `SendMessageRequest`, read straight from the request's
/// protobuf bytes: every string and the body are byte ranges of those bytes, nothing is copied.
///
/// Reading is deliberately narrow. It accepts only what it can read exactly as protobuf-c and
/// the generated `Apache_Rocketmq_V2_Message` would: the fields a producer sends, each singular
/// field at most once, strings the broker uses made of ASCII without NUL (protobuf-c's C
/// strings end at a NUL). Anything else — other system properties, a repeated singular field
/// (protobuf merges those), UTF-8 beyond ASCII, malformed bytes — makes `read` return nil,
/// and the caller takes the generated path, which then decides (and fails) as it always did.
struct WireSendMessage {
    /// `topic.name`.
    var topic: Range<Int> = 0..<0
    /// `user_properties`, in wire order.
    var userProperties: [(key: Range<Int>, value: Range<Int>)] = []
    var body: Range<Int> = 0..<0
    /// `system_properties.tag`, when present (proto3 `optional`).
    var tag: Range<Int>?
    var keys: [Range<Int>] = []
    var messageId: Range<Int> = 0..<0
    var bodyEncoding: Int32 = 0
    var messageType: Int32 = 0
    /// `born_timestamp` in ms since the epoch, when present.
    var bornTimestamp: Int64?
    var bornHost: Range<Int> = 0..<0
    /// `delivery_timestamp` in ms since the epoch, when present.
    var deliveryTimestamp: Int64?
    var queueId: Int32 = 0
    var messageGroup: Range<Int>?
    var traceContext: Range<Int>?

    /// The only message of a `SendMessageRequest` encoded in `bytes`; nil when there is not
    /// exactly one or it is outside what this reader handles (see the type's comment).
    static func read(request bytes: UnsafeRawBufferPointer) -> WireSendMessage? {
        var reader = ProtoWireReader(bytes, in: 0..<bytes.count)
        var message: WireSendMessage?
        while let (field, wireType) = reader.nextTag() {
            if field == 1 {
                guard message == nil, wireType == 2, let range = reader.lengthDelimited(),
                      let parsed = WireSendMessage(bytes, in: range)
                else { return nil }
                message = parsed
            } else {
                guard reader.skip(wireType) else { return nil }
            }
        }
        guard reader.atEnd else { return nil }
        return message
    }

    private init?(_ bytes: UnsafeRawBufferPointer, in range: Range<Int>) {
        var reader = ProtoWireReader(bytes, in: range)
        var seen: UInt32 = 0
        while let (field, wireType) = reader.nextTag() {
            switch field {
            case 1, 3, 4:
                guard seen & (1 << field) == 0, wireType == 2, let value = reader.lengthDelimited() else { return nil }
                seen |= 1 << field
                switch field {
                case 1: guard let name = Self.resourceName(bytes, in: value) else { return nil }; topic = name
                case 3: guard readSystemProperties(bytes, in: value) else { return nil }
                default: body = value
                }
            case 2:
                guard wireType == 2, let entry = reader.lengthDelimited(), let pair = Self.mapEntry(bytes, in: entry) else { return nil }
                userProperties.append(pair)
            default:
                guard reader.skip(wireType) else { return nil }
            }
        }
        guard reader.atEnd else { return nil }
    }

    /// `Resource.name`, checked as a used string; the namespace is read past.
    private static func resourceName(_ bytes: UnsafeRawBufferPointer, in range: Range<Int>) -> Range<Int>? {
        stringPair(bytes, in: range, firstIsUsed: false)?.second
    }

    /// A `map<string, string>` entry; a missing key or value is empty.
    private static func mapEntry(_ bytes: UnsafeRawBufferPointer, in range: Range<Int>) -> (key: Range<Int>, value: Range<Int>)? {
        stringPair(bytes, in: range, firstIsUsed: true).map { ($0.first, $0.second) }
    }

    /// A message of two string fields, 1 and 2, each at most once (other fields are skipped); a
    /// missing one is empty. Field 2, and field 1 when `firstIsUsed`, must be plain ASCII.
    private static func stringPair(
        _ bytes: UnsafeRawBufferPointer, in range: Range<Int>, firstIsUsed: Bool
    ) -> (first: Range<Int>, second: Range<Int>)? {
        var reader = ProtoWireReader(bytes, in: range)
        var first: Range<Int>?
        var second: Range<Int>?
        while let (field, wireType) = reader.nextTag() {
            switch field {
            case 1:
                guard first == nil, wireType == 2, let value = reader.lengthDelimited(), !firstIsUsed || bytes.isPlainASCII(value) else { return nil }
                first = value
            case 2:
                guard second == nil, wireType == 2, let value = reader.lengthDelimited(), bytes.isPlainASCII(value) else { return nil }
                second = value
            default:
                guard reader.skip(wireType) else { return nil }
            }
        }
        guard reader.atEnd else { return nil }
        let empty = range.lowerBound..<range.lowerBound
        return (first ?? empty, second ?? empty)
    }

    private mutating func readSystemProperties(_ bytes: UnsafeRawBufferPointer, in range: Range<Int>) -> Bool {
        var reader = ProtoWireReader(bytes, in: range)
        var seen: UInt32 = 0
        while let (field, wireType) = reader.nextTag() {
            switch field {
            case 2:  // repeated string keys
                guard wireType == 2, let value = reader.lengthDelimited(), bytes.isPlainASCII(value) else { return false }
                keys.append(value)
            case 1, 3, 8, 17, 18:  // strings
                guard seen & (1 << field) == 0, wireType == 2, let value = reader.lengthDelimited(), bytes.isPlainASCII(value) else { return false }
                seen |= 1 << field
                switch field {
                case 1: tag = value
                case 3: messageId = value
                case 8: bornHost = value
                case 17: messageGroup = value
                default: traceContext = value
                }
            case 4:  // body_digest: checked as protobuf-c would, not used
                guard seen & (1 << field) == 0, wireType == 2, let value = reader.lengthDelimited(),
                      Self.isDigest(bytes, in: value)
                else { return false }
                seen |= 1 << field
            case 5, 6, 13:  // enums and int32: the low 32 bits of the varint, as protobuf-c reads them
                guard seen & (1 << field) == 0, wireType == 0, let value = reader.varint() else { return false }
                seen |= 1 << field
                let v = Int32(truncatingIfNeeded: value)
                switch field {
                case 5: bodyEncoding = v
                case 6: messageType = v
                default: queueId = v
                }
            case 7, 11:  // google.protobuf.Timestamp
                guard seen & (1 << field) == 0, wireType == 2, let value = reader.lengthDelimited(),
                      let ms = Self.timestampMilliseconds(bytes, in: value)
                else { return false }
                seen |= 1 << field
                if field == 7 { bornTimestamp = ms } else { deliveryTimestamp = ms }
            default:
                // Known fields a producer does not send (store-side, consume-side, lite topics,
                // priority...) go the generated way; unknown ones are read past, as protobuf-c
                // keeps them aside and the broker ignores them.
                guard field > 22, reader.skip(wireType) else { return false }
            }
        }
        return reader.atEnd
    }

    /// `Digest { DigestType type = 1; string checksum = 2; }`, well-formed.
    private static func isDigest(_ bytes: UnsafeRawBufferPointer, in range: Range<Int>) -> Bool {
        var reader = ProtoWireReader(bytes, in: range)
        while let (field, wireType) = reader.nextTag() {
            switch field {
            case 1: guard wireType == 0, reader.varint() != nil else { return false }
            case 2: guard wireType == 2, reader.lengthDelimited() != nil else { return false }
            default: guard reader.skip(wireType) else { return false }
            }
        }
        return reader.atEnd
    }

    /// `Google_Protobuf_Timestamp.milliseconds` of an encoded Timestamp (later scalar values
    /// win, as in protobuf); nil when malformed or when that computation would overflow.
    private static func timestampMilliseconds(_ bytes: UnsafeRawBufferPointer, in range: Range<Int>) -> Int64? {
        var reader = ProtoWireReader(bytes, in: range)
        var seconds: Int64 = 0
        var nanos: Int32 = 0
        while let (field, wireType) = reader.nextTag() {
            switch field {
            case 1:
                guard wireType == 0, let v = reader.varint() else { return nil }
                seconds = Int64(bitPattern: v)
            case 2:
                guard wireType == 0, let v = reader.varint() else { return nil }
                nanos = Int32(truncatingIfNeeded: v)
            default:
                guard reader.skip(wireType) else { return nil }
            }
        }
        guard reader.atEnd else { return nil }
        let (ms, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        guard !overflow else { return nil }
        let (sum, overflow2) = ms.addingReportingOverflow(Int64(nanos / 1_000_000))
        return overflow2 ? nil : sum
    }
}

extension UnsafeRawBufferPointer {
    /// Whether `range` holds only ASCII without NUL: the bytes a C string and a Swift `String`
    /// agree on, and on which byte checks equal the `String` checks of `SendValidation`.
    func isPlainASCII(_ range: Range<Int>) -> Bool {
        for i in range where self[i] == 0 || self[i] >= 0x80 { return false }
        return true
    }
}
