/// The well-known types' special JSON forms (google/protobuf/*.proto).
extension JSONMapping {
    static let wrapperTypes: Set<String> = [
        "google.protobuf.DoubleValue", "google.protobuf.FloatValue", "google.protobuf.Int64Value",
        "google.protobuf.UInt64Value", "google.protobuf.Int32Value", "google.protobuf.UInt32Value",
        "google.protobuf.BoolValue", "google.protobuf.StringValue", "google.protobuf.BytesValue",
    ]

    /// Types whose JSON form is not an object of their fields (inside `Any` they go under `"value"`).
    static func hasSpecialJSON(_ fullName: String) -> Bool {
        wrapperTypes.contains(fullName) || [
            "google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.Struct",
            "google.protobuf.Value", "google.protobuf.ListValue", "google.protobuf.FieldMask",
            "google.protobuf.Any",
        ].contains(fullName)
    }

    // MARK: Encoding

    func encodeWellKnown(_ message: DynamicMessage) throws(AdminError) -> JSONValue? {
        let name = message.descriptor.fullName
        if Self.wrapperTypes.contains(name) {
            guard let field = message.descriptor.field(number: 1) else { return nil }
            return try encodeValue(message[1] ?? FieldValue.defaultValue(for: field) ?? .int32(0), field: field)
        }
        switch name {
        case "google.protobuf.Timestamp":
            return .string(try Self.formatTimestamp(seconds: message.int64(1), nanos: message.int32(2)))
        case "google.protobuf.Duration":
            return .string(try Self.formatDuration(seconds: message.int64(1), nanos: message.int32(2)))
        case "google.protobuf.FieldMask":
            guard case .list(let paths)? = message[1] else { return .string("") }
            var camel: [String] = []
            for case .string(let path) in paths {
                guard !path.contains(where: { $0.isUppercase }) else {
                    throw .invalidJSON(path: "", reason: "field mask path \"\(path)\" cannot be written as JSON (upper-case letters)")
                }
                camel.append(FieldDescriptor.jsonName(for: path))
            }
            return .string(camel.joined(separator: ","))
        case "google.protobuf.Struct":
            guard case .map(let entries)? = message[1], let field = message.descriptor.field(number: 1), let entry = field.mapEntry else { return .object([]) }
            var members: [(String, JSONValue)] = []
            for pair in entries { members.append((Self.mapKeyText(pair.key), try encodeValue(pair.value, field: entry.value.field))) }
            return .object(members)
        case "google.protobuf.ListValue":
            guard case .list(let values)? = message[1] else { return .array([]) }
            var out: [JSONValue] = []
            for case .message(let value) in values { out.append(try encode(value)) }
            return .array(out)
        case "google.protobuf.Value":
            guard let (field, value) = message.setFields.first else {
                throw .invalidJSON(path: "", reason: "google.protobuf.Value has no kind set")
            }
            switch field.number {
            case 1: return .null
            case 2:
                if case .double(let d) = value, !d.isFinite {
                    throw .invalidJSON(path: "", reason: "google.protobuf.Value cannot hold \(d) in JSON")
                }
                return try encodeValue(value, field: field)
            default: return try encodeValue(value, field: field)
            }
        case "google.protobuf.Any":
            return try encodeAny(message)
        default:
            return nil
        }
    }

    private func encodeAny(_ message: DynamicMessage) throws(AdminError) -> JSONValue {
        guard case .string(let typeURL)? = message[1] else {
            if message[2] == nil { return .object([]) }
            throw .invalidJSON(path: "", reason: "google.protobuf.Any has a value but no type_url")
        }
        let typeName = String(typeURL.split(separator: "/").last ?? "")
        guard let type = pool.message(named: typeName) else { throw .unknownAnyType(typeName) }
        var bytes: [UInt8] = []
        if case .bytes(let b)? = message[2] { bytes = b }
        let inner = try WireCodec.decode(bytes, as: type, pool: pool)
        let json = try encode(inner)
        if Self.hasSpecialJSON(typeName) {
            return .object([("@type", .string(typeURL)), ("value", json)])
        }
        guard case .object(let members) = json else { return json }
        return .object([("@type", .string(typeURL))] + members)
    }

    // MARK: Decoding

    func decodeWellKnown(_ json: JSONValue, as descriptor: MessageDescriptor, path: String) throws(AdminError) -> DynamicMessage? {
        let name = descriptor.fullName
        var message = DynamicMessage(descriptor: descriptor)
        if Self.wrapperTypes.contains(name) {
            guard let field = descriptor.field(number: 1) else { return nil }
            // A wrapper given as an object of its fields is accepted too.
            if case .object = json { return nil }
            message.set(field, to: try decodeSingle(json, field: field, path: path))
            return message
        }
        switch name {
        case "google.protobuf.Timestamp":
            guard case .string(let text) = json else {
                throw .invalidJSON(path: path, reason: "expected an RFC 3339 string for google.protobuf.Timestamp, got \(json.typeName)")
            }
            let (seconds, nanos) = try Self.parseTimestamp(text, path: path)
            try message.set("seconds", to: .int64(seconds))
            try message.set("nanos", to: .int32(nanos))
            return message
        case "google.protobuf.Duration":
            guard case .string(let text) = json else {
                throw .invalidJSON(path: path, reason: "expected a string like \"1.5s\" for google.protobuf.Duration, got \(json.typeName)")
            }
            let (seconds, nanos) = try Self.parseDuration(text, path: path)
            try message.set("seconds", to: .int64(seconds))
            try message.set("nanos", to: .int32(nanos))
            return message
        case "google.protobuf.FieldMask":
            guard case .string(let text) = json else {
                throw .invalidJSON(path: path, reason: "expected a comma-separated string for google.protobuf.FieldMask, got \(json.typeName)")
            }
            let paths = text.split(separator: ",").map { part -> FieldValue in
                var snake = ""
                for c in part {
                    if c.isUppercase { snake += "_" + c.lowercased() } else { snake.append(c) }
                }
                return .string(snake)
            }
            try message.set("paths", to: .list(paths))
            return message
        case "google.protobuf.Struct":
            guard case .object = json, let field = descriptor.field(number: 1) else {
                throw .invalidJSON(path: path, reason: "expected a JSON object for google.protobuf.Struct, got \(json.typeName)")
            }
            message.set(field, to: try decodeField(json, field: field, path: path))
            return message
        case "google.protobuf.ListValue":
            guard case .array = json, let field = descriptor.field(number: 1) else {
                throw .invalidJSON(path: path, reason: "expected a JSON array for google.protobuf.ListValue, got \(json.typeName)")
            }
            message.set(field, to: try decodeField(json, field: field, path: path))
            return message
        case "google.protobuf.Value":
            switch json {
            case .null: try message.set("null_value", to: .enumeration(0))
            case .number(let text):
                guard let d = Double(text) else { throw .invalidJSON(path: path, reason: "invalid number \(text)") }
                try message.set("number_value", to: .double(d))
            case .string(let s): try message.set("string_value", to: .string(s))
            case .bool(let b): try message.set("bool_value", to: .bool(b))
            case .object:
                guard let field = descriptor.field(named: "struct_value") else { return nil }
                message.set(field, to: try decodeSingle(json, field: field, path: path))
            case .array:
                guard let field = descriptor.field(named: "list_value") else { return nil }
                message.set(field, to: try decodeSingle(json, field: field, path: path))
            }
            return message
        case "google.protobuf.Any":
            guard case .object(let members) = json else {
                throw .invalidJSON(path: path, reason: "expected a JSON object with \"@type\" for google.protobuf.Any, got \(json.typeName)")
            }
            if members.isEmpty { return message }
            guard let typeMember = members.first(where: { $0.0 == "@type" }), case .string(let typeURL) = typeMember.1 else {
                throw .invalidJSON(path: path, reason: "google.protobuf.Any needs a string \"@type\" member")
            }
            let typeName = String(typeURL.split(separator: "/").last ?? "")
            guard let type = pool.message(named: typeName) else {
                throw .invalidJSON(path: path + ".@type", reason: "type \(typeName) is not in the descriptor pool")
            }
            let rest = members.filter { $0.0 != "@type" }
            let inner: DynamicMessage
            if Self.hasSpecialJSON(typeName) {
                guard let value = rest.first(where: { $0.0 == "value" })?.1 else {
                    throw .invalidJSON(path: path, reason: "google.protobuf.Any of \(typeName) needs a \"value\" member")
                }
                inner = try decode(value, as: type, path: path + ".value")
            } else {
                inner = try decodeMembers(rest, as: type, path: path)
            }
            try message.set("type_url", to: .string(typeURL))
            try message.set("value", to: .bytes(WireCodec.encode(inner)))
            return message
        default:
            return nil
        }
    }

    // MARK: Timestamp and Duration text

    /// Seconds between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range RFC 3339 JSON allows.
    static let minTimestampSeconds: Int64 = -62_135_596_800
    static let maxTimestampSeconds: Int64 = 253_402_300_799

    static func formatTimestamp(seconds: Int64, nanos: Int32) throws(AdminError) -> String {
        guard (minTimestampSeconds...maxTimestampSeconds).contains(seconds), (0..<1_000_000_000).contains(nanos) else {
            throw .invalidJSON(path: "", reason: "timestamp \(seconds)s \(nanos)ns is out of range for JSON")
        }
        let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let secondOfDay = seconds - days * 86400
        let (year, month, day) = civilFromDays(days)
        func pad(_ v: Int64, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(secondOfDay / 3600, 2)):\(pad(secondOfDay / 60 % 60, 2)):\(pad(secondOfDay % 60, 2))"
            + fraction(nanos) + "Z"
    }

    /// `""`, `.123`, `.123456` or `.123456789`: the shortest of 0, 3, 6, 9 digits that is exact.
    static func fraction(_ nanos: Int32) -> String {
        guard nanos != 0 else { return "" }
        let digits = String(nanos)
        var text = String(repeating: "0", count: 9 - digits.count) + digits
        while text.count > 3, text.hasSuffix("000") { text.removeLast(3) }
        return "." + text
    }

    static func parseTimestamp(_ text: String, path: String) throws(AdminError) -> (Int64, Int32) {
        let bad = AdminError.invalidJSON(path: path, reason: "\"\(text)\" is not an RFC 3339 timestamp like \"2024-01-02T03:04:05.678Z\"")
        let chars = Array(text.utf8)
        func number(_ range: Range<Int>) throws(AdminError) -> Int64 {
            guard range.upperBound <= chars.count else { throw bad }
            var v: Int64 = 0
            for c in chars[range] {
                guard (48...57).contains(c) else { throw bad }
                v = v * 10 + Int64(c - 48)
            }
            return v
        }
        guard chars.count >= 20, chars[4] == UInt8(ascii: "-"), chars[7] == UInt8(ascii: "-"),
            chars[10] == UInt8(ascii: "T") || chars[10] == UInt8(ascii: "t"),
            chars[13] == UInt8(ascii: ":"), chars[16] == UInt8(ascii: ":")
        else { throw bad }
        let year = try number(0..<4), month = try number(5..<7), day = try number(8..<10)
        let hour = try number(11..<13), minute = try number(14..<16), second = try number(17..<19)
        guard (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 60 else { throw bad }
        var index = 19
        var nanos: Int64 = 0
        if chars[index] == UInt8(ascii: ".") {
            index += 1
            let start = index
            while index < chars.count, (48...57).contains(chars[index]) { index += 1 }
            let count = index - start
            guard (1...9).contains(count) else { throw bad }
            nanos = try number(start..<index)
            for _ in count..<9 { nanos *= 10 }
        }
        guard index < chars.count else { throw bad }
        var offset: Int64 = 0
        switch chars[index] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            guard index + 1 == chars.count else { throw bad }
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            guard index + 6 == chars.count, chars[index + 3] == UInt8(ascii: ":") else { throw bad }
            let hours = try number(index + 1..<index + 3), minutes = try number(index + 4..<index + 6)
            offset = (hours * 3600 + minutes * 60) * (chars[index] == UInt8(ascii: "-") ? -1 : 1)
        default:
            throw bad
        }
        let seconds = daysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset
        guard (minTimestampSeconds...maxTimestampSeconds).contains(seconds) else {
            throw .invalidJSON(path: path, reason: "timestamp \"\(text)\" is out of range (0001-01-01 to 9999-12-31)")
        }
        return (seconds, Int32(nanos))
    }

    static let maxDurationSeconds: Int64 = 315_576_000_000

    static func formatDuration(seconds: Int64, nanos: Int32) throws(AdminError) -> String {
        guard abs(seconds) <= maxDurationSeconds, abs(nanos) < 1_000_000_000, seconds == 0 || nanos == 0 || (seconds < 0) == (nanos < 0) else {
            throw .invalidJSON(path: "", reason: "duration \(seconds)s \(nanos)ns is out of range or has mismatched signs")
        }
        let negative = seconds < 0 || nanos < 0
        return (negative ? "-" : "") + String(abs(seconds)) + fraction(abs(nanos)) + "s"
    }

    static func parseDuration(_ text: String, path: String) throws(AdminError) -> (Int64, Int32) {
        let bad = AdminError.invalidJSON(path: path, reason: "\"\(text)\" is not a duration like \"1.5s\"")
        guard text.hasSuffix("s") else { throw bad }
        var body = Substring(text.dropLast())
        let negative = body.hasPrefix("-")
        if negative { body = body.dropFirst() }
        let parts = body.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), !parts[0].isEmpty, parts[0].allSatisfy(\.isASCII), let seconds = Int64(parts[0]), parts[0].allSatisfy(\.isNumber) else { throw bad }
        var nanos: Int64 = 0
        if parts.count == 2 {
            let digits = parts[1]
            guard (1...9).contains(digits.count), digits.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int64(digits) else { throw bad }
            nanos = value
            for _ in digits.count..<9 { nanos *= 10 }
        }
        guard seconds <= maxDurationSeconds else {
            throw .invalidJSON(path: path, reason: "duration \"\(text)\" is out of range (±315576000000s)")
        }
        return negative ? (-seconds, Int32(-nanos)) : (seconds, Int32(nanos))
    }

    /// Howard Hinnant's days-from-civil (proleptic Gregorian, day 0 = 1970-01-01).
    static func daysFromCivil(_ y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    static func civilFromDays(_ z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }
}

extension DynamicMessage {
    func int64(_ number: Int32) -> Int64 {
        if case .int64(let v)? = self[number] { return v }
        return 0
    }

    func int32(_ number: Int32) -> Int32 {
        if case .int32(let v)? = self[number] { return v }
        return 0
    }
}
