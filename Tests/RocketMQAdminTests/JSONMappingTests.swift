import RocketMQAPI
import RocketMQTestingSchema
import RocketProto
import Testing

@testable import RocketMQAdmin

@Suite("JSONMapping: the proto3 JSON mapping")
struct JSONMappingTests {
    let pool: DescriptorPool
    let type: MessageDescriptor

    init() throws {
        pool = try testPool()
        type = try allFieldsType(pool)
    }

    func json(_ message: AllFields, emitDefaults: Bool = false) throws -> JSONValue {
        let dynamic = try WireCodec.decode(message.serializedBytes(), as: type, pool: pool)
        return try JSONMapping(pool: pool, emitDefaults: emitDefaults).encode(dynamic)
    }

    func member(_ json: JSONValue, _ name: String) -> JSONValue? {
        guard case .object(let members) = json else { return nil }
        return members.first { $0.0 == name }?.1
    }

    func parse(_ text: String, as typeName: String = "rocketmq.testing.v1.AllFields") throws -> AllFields {
        let target = try #require(pool.message(named: typeName))
        let dynamic = try JSONMapping(pool: pool).message(fromJSON: text, as: target)
        return try AllFields(serializedBytes: WireCodec.encode(dynamic))
    }

    func parseError(_ text: String) -> String {
        do {
            _ = try JSONMapping(pool: pool).message(fromJSON: text, as: type)
            return "no error"
        } catch {
            return error.description
        }
    }

    @Test("every field survives JSON and back")
    func fullRoundTrip() throws {
        let original = everyFieldSet()
        let text = try json(original).serialized()
        #expect(try parse(text) == original)
    }

    @Test("64-bit integers print as strings and parse from strings or numbers")
    func sixtyFourBit() throws {
        var m = AllFields()
        m.fInt64 = -5
        m.fUint64 = .max
        m.fInt32 = 7
        let out = try json(m)
        #expect(member(out, "fInt64") == .string("-5"))
        #expect(member(out, "fUint64") == .string("18446744073709551615"))
        #expect(member(out, "fInt32") == .number("7"))
        #expect(try parse(#"{"fInt64": -5, "fUint64": "18446744073709551615", "fInt32": "7"}"#) == m)
        #expect(try parse(#"{"fInt32": 7.0, "fInt64": "-5", "fUint64": 18446744073709551615}"#) == m)
        #expect(try parse(#"{"fInt32": 7e0}"#).fInt32 == 7)
    }

    @Test("bytes are standard base64 out, standard or URL-safe in")
    func bytes() throws {
        var m = AllFields()
        m.fBytes = [0xFB, 0xFF, 0xBF]
        #expect(member(try json(m), "fBytes") == .string("+/+/"))
        #expect(try parse(#"{"fBytes": "+/+/"}"#).fBytes == [0xFB, 0xFF, 0xBF])
        #expect(try parse(#"{"fBytes": "-_-_"}"#).fBytes == [0xFB, 0xFF, 0xBF])
        #expect(try parse(#"{"fBytes": "AQ"}"#).fBytes == [1])
        #expect(parseError(#"{"fBytes": "*"}"#).contains("base64"))
    }

    @Test("enums print by name, parse by name or number; unknown numbers print as numbers")
    func enums() throws {
        var m = AllFields()
        m.fShade = .dark
        m.fMood = .grumpy
        m.rShade = [.UNRECOGNIZED(99)]
        let out = try json(m)
        #expect(member(out, "fShade") == .string("SHADE_DARK"))
        #expect(member(out, "fMood") == .string("GRUMPY"))
        #expect(member(out, "rShade") == .array([.number("99")]))
        #expect(try parse(#"{"fShade": 2, "fMood": "GRUMPY"}"#) == { var x = AllFields(); x.fShade = .dark; x.fMood = .grumpy; return x }())
        #expect(parseError(#"{"fShade": "PURPLE"}"#).contains("SHADE_DARK"))
    }

    @Test("JSON names out; JSON names and .proto names in")
    func names() throws {
        var m = AllFields()
        m.fString = "x"
        #expect(member(try json(m), "fString") == .string("x"))
        #expect(try parse(#"{"f_string": "x"}"#) == m)
        let dynamic = try WireCodec.decode(m.serializedBytes(), as: type, pool: pool)
        #expect(member(try JSONMapping(pool: pool, useProtoNames: true).encode(dynamic), "f_string") == .string("x"))
    }

    @Test("maps are objects with string keys")
    func maps() throws {
        var m = AllFields()
        m.mInt32Point = [-1: Point(x: 2)]
        m.mBoolShade = [true: .dark]
        m.mUint64Bytes = [5: [1]]
        let out = try json(m)
        #expect(member(out, "mInt32Point") == .object([("-1", .object([("x", .number("2"))]))]))
        #expect(member(out, "mBoolShade") == .object([("true", .string("SHADE_DARK"))]))
        #expect(member(out, "mUint64Bytes") == .object([("5", .string("AQ=="))]))
        #expect(try parse(#"{"mInt32Point": {"-1": {"x": 2}}, "mBoolShade": {"true": "SHADE_DARK"}, "mUint64Bytes": {"5": "AQ=="}}"#) == m)
        #expect(parseError(#"{"mInt32Point": {"x": {}}}"#).contains("mInt32Point"))
    }

    @Test("oneofs: the set member prints even at its default; two members is an error")
    func oneofs() throws {
        var m = AllFields()
        m.choice = .cInt64(0)
        #expect(member(try json(m), "cInt64") == .string("0"))
        #expect(try parse(#"{"cInt64": "0"}"#) == m)
        #expect(parseError(#"{"cString": "a", "cInt64": 1}"#).contains("same oneof"))
    }

    @Test("defaults are omitted unless emitDefaults; proto3 optional prints when set")
    func defaults() throws {
        var m = AllFields()
        m.oInt32 = 0
        let plain = try json(m)
        #expect(plain == .object([("oInt32", .number("0"))]))
        let full = try json(m, emitDefaults: true)
        #expect(member(full, "fInt32") == .number("0"))
        #expect(member(full, "fInt64") == .string("0"))
        #expect(member(full, "fString") == .string(""))
        #expect(member(full, "fShade") == .string("SHADE_UNSPECIFIED"))
        #expect(member(full, "rInt32") == .array([]))
        #expect(member(full, "mStringString") == .object([]))
        #expect(member(full, "fPoint") == nil, "message fields have presence")
        #expect(member(full, "oString") == nil, "unset proto3 optional fields have presence")
    }

    @Test("NaN and infinities are strings")
    func nonFinite() throws {
        var m = AllFields()
        m.fFloat = .infinity
        m.fDouble = -.infinity
        m.rDouble = [.nan]
        let out = try json(m)
        #expect(member(out, "fFloat") == .string("Infinity"))
        #expect(member(out, "fDouble") == .string("-Infinity"))
        #expect(member(out, "rDouble") == .array([.string("NaN")]))
        let back = try parse(out.serialized())
        #expect(back.fFloat == .infinity && back.fDouble == -.infinity && back.rDouble.first?.isNaN == true)
    }

    @Test("Timestamp is RFC 3339 and Duration is seconds with an s")
    func timestampAndDuration() throws {
        var m = AllFields()
        m.at = Google_Protobuf_Timestamp(seconds: 1_700_000_000, nanos: 120_000_000)
        m.after = Google_Protobuf_Duration(seconds: -1, nanos: -500_000_000)
        let out = try json(m)
        #expect(member(out, "at") == .string("2023-11-14T22:13:20.120Z"))
        #expect(member(out, "after") == .string("-1.500s"))
        #expect(try parse(out.serialized()) == m)
        #expect(try parse(#"{"at": "2023-11-14T23:13:20.12+01:00"}"#).at == m.at)
        #expect(try parse(#"{"at": "1970-01-01T00:00:00Z", "after": "0s"}"#).at == Google_Protobuf_Timestamp())
        #expect(try parse(#"{"after": "1.000000001s"}"#).after == Google_Protobuf_Duration(seconds: 1, nanos: 1))
        #expect(parseError(#"{"at": "yesterday"}"#).contains("RFC 3339"))
        #expect(parseError(#"{"after": "5 minutes"}"#).contains("1.5s"))
        #expect(parseError(#"{"at": 5}"#).contains("RFC 3339"))
    }

    @Test("Empty is an empty object")
    func empty() throws {
        var m = AllFields()
        m.nothing = Google_Protobuf_Empty()
        #expect(member(try json(m), "nothing") == .object([]))
        #expect(try parse(#"{"nothing": {}}"#) == m)
    }

    /// Round-trips `text` through a well-known type and returns the re-printed JSON.
    func wellKnown(_ typeName: String, _ text: String) throws -> String {
        let target = try #require(pool.message(named: typeName))
        let mapping = JSONMapping(pool: pool)
        let message = try mapping.message(fromJSON: text, as: target)
        let decoded = try WireCodec.decode(WireCodec.encode(message), as: target, pool: pool)
        return try mapping.encode(decoded).serialized(indent: 0)
    }

    @Test("Struct, Value and ListValue are plain JSON")
    func structs() throws {
        #expect(try wellKnown("google.protobuf.Struct", #"{"a": 1, "b": [true, null, "x"], "c": {"d": -2.5}}"#) == #"{"a":1,"b":[true,null,"x"],"c":{"d":-2.5}}"#)
        #expect(try wellKnown("google.protobuf.Value", "null") == "null")
        #expect(try wellKnown("google.protobuf.ListValue", #"[1, "a", {}]"#) == #"[1,"a",{}]"#)
        #expect(throws: AdminError.self) { _ = try wellKnown("google.protobuf.Struct", "[1]") }
    }

    @Test("wrappers are bare values (Int64Value as a string)")
    func wrappers() throws {
        #expect(try wellKnown("google.protobuf.Int64Value", "5") == #""5""#)
        #expect(try wellKnown("google.protobuf.UInt32Value", "7") == "7")
        #expect(try wellKnown("google.protobuf.BoolValue", "true") == "true")
        #expect(try wellKnown("google.protobuf.StringValue", #""hi""#) == #""hi""#)
        #expect(try wellKnown("google.protobuf.BytesValue", #""AQI=""#) == #""AQI=""#)
        #expect(try wellKnown("google.protobuf.DoubleValue", #""NaN""#) == #""NaN""#)
        #expect(try wellKnown("google.protobuf.Int32Value", "0") == "0", "a wrapper prints its value even when it is the default")
    }

    @Test("FieldMask is comma-separated lowerCamelCase paths")
    func fieldMask() throws {
        #expect(try wellKnown("google.protobuf.FieldMask", #""fString,fPoint.x""#) == #""fString,fPoint.x""#)
        let target = try #require(pool.message(named: "google.protobuf.FieldMask"))
        let message = try JSONMapping(pool: pool).message(fromJSON: #""fooBar,baz""#, as: target)
        #expect(message["paths"] == .list([.string("foo_bar"), .string("baz")]))
    }

    @Test("Any carries @type; well-known payloads go under value")
    func any() throws {
        #expect(try wellKnown("google.protobuf.Any", #"{"@type": "type.googleapis.com/rocketmq.testing.v1.AllFields.Point", "x": 3}"#)
            == #"{"@type":"type.googleapis.com/rocketmq.testing.v1.AllFields.Point","x":3}"#)
        #expect(try wellKnown("google.protobuf.Any", #"{"@type": "type.googleapis.com/google.protobuf.Duration", "value": "2s"}"#)
            == #"{"@type":"type.googleapis.com/google.protobuf.Duration","value":"2s"}"#)
        do {
            _ = try wellKnown("google.protobuf.Any", #"{"@type": "type.googleapis.com/no.such.Type"}"#)
            Issue.record("an unknown @type was accepted")
        } catch {
            #expect("\(error)".contains("no.such.Type"))
        }
    }

    @Test("malformed JSON fails with where and what")
    func malformed() {
        #expect(parseError(#"{"fInt32": 1"#).contains("malformed JSON"))
        #expect(parseError(#"{"fInt32": 1,}"#).contains("line 1"))
        #expect(parseError("[1]").contains("expected a JSON object"))
        #expect(parseError(#"{"fInt32": 1} x"#).contains("after the JSON value"))
        #expect(parseError(#"{'a': 1}"#).contains("member name"))
    }

    @Test("wrong field types fail naming the field path")
    func wrongTypes() {
        #expect(parseError(#"{"fBool": "yes"}"#) == ".fBool: expected true or false for bool field, got string")
        #expect(parseError(#"{"fInt32": 1.5}"#).contains("not an integer"))
        #expect(parseError(#"{"fInt32": 3000000000}"#).contains("out of range"))
        #expect(parseError(#"{"fUint32": -1}"#).contains("out of range"))
        #expect(parseError(#"{"fString": 5}"#).contains("expected a string"))
        #expect(parseError(#"{"fPoint": {"x": "a"}}"#).hasPrefix(".fPoint.x:"))
        #expect(parseError(#"{"rInt32": 5}"#).contains("expected a JSON array"))
        #expect(parseError(#"{"rPoint": [{"z": 1}]}"#).hasPrefix(".rPoint[0].z:"))
        #expect(parseError(#"{"nope": 1}"#).contains("has no field named \"nope\""))
        #expect(parseError(#"{"fInt32": 1, "f_int32": 2}"#).contains("more than once"))
    }

    @Test("unknown members are skipped when asked")
    func ignoreUnknown() throws {
        let message = try JSONMapping(pool: pool, ignoreUnknownFields: true).message(fromJSON: #"{"nope": 1, "fInt32": 2}"#, as: type)
        #expect(message["fInt32"] == .int32(2))
    }

    @Test("a stream of concatenated documents parses one by one")
    func stream() throws {
        var parser = JSONParser(#"{"a": 1} {"b": 2}[3]"#)
        var count = 0
        while try parser.next() != nil { count += 1 }
        #expect(count == 3)
    }

    @Test("output escapes quotes, backslashes and control characters only, and pretty-prints like grpcurl")
    func printing() {
        #expect(JSONValue.object([("a", .string("<\"\n\u{1}é"))]).serialized() == "{\n  \"a\": \"<\\\"\\n\\u0001é\"\n}")
        #expect(JSONValue.array([.number("1"), .object([])]).serialized() == "[\n  1,\n  {}\n]")
    }
}

@Suite("JSONMapping with generated types and hostile input")
struct GeneratedJSONTests {
    @Test("generated messages print and parse through the embedded descriptor")
    func generated() throws {
        let mapping = JSONMapping(pool: try testPool())
        var m = AllFields()
        m.fInt64 = 3
        m.labels = [Rocketmq_Testing_Other_V1_Label(key: "k")]
        let text = try mapping.string(fromGenerated: m, indent: 0)
        #expect(text == #"{"fInt64":"3","labels":[{"key":"k"}]}"#)
        #expect(try mapping.generated(AllFields.self, fromJSON: text) == m)
        #expect(throws: AdminError.unknownSymbol("grpc.health.v1.HealthCheckRequest")) {
            _ = try mapping.string(fromGenerated: Grpc_Health_V1_HealthCheckRequest())
        }
    }

    @Test("messages nested past 100 levels are rejected, not a stack overflow")
    func deepNesting() throws {
        let pool = try testPool()
        let listValue = try #require(pool.message(named: "google.protobuf.ListValue"))
        // ListValue{values: [Value{list_value: ListValue{...}}]}, 200 levels: field 1 (values) then field 6 (list_value).
        var bytes: [UInt8] = []
        for level in 0..<200 {
            let tag: UInt8 = level % 2 == 0 ? 0x32 : 0x0A  // Value.list_value = 6 / ListValue.values = 1
            var prefixed: [UInt8] = [tag]
            WireCodec.writeVarint(UInt64(bytes.count), into: &prefixed)
            bytes = prefixed + bytes
        }
        // The outermost tag is 0x0A (values): the bytes are a ListValue 200 messages deep.
        #expect(throws: AdminError.self) { _ = try WireCodec.decode(bytes, as: listValue, pool: pool) }
        // 40 levels are fine.
        #expect(throws: Never.self) { _ = try WireCodec.decode(Array(bytes.suffix(from: bytes.count - 80)), as: listValue, pool: pool) }
        let deepJSON = String(repeating: "[", count: 500) + String(repeating: "]", count: 500)
        #expect(throws: AdminError.self) { _ = try JSONMapping(pool: pool).message(fromJSON: deepJSON, as: listValue) }
    }
}

@Suite("JSONStreamSplitter")
struct JSONStreamSplitterTests {
    @Test("documents split at their ends whatever the chunking")
    func chunking() {
        let text = #"{"a": "x}y\"", "b": [1, {"c": 2}]} ["ü"] "s\"t" 12 {} -3.5"#
        let expected = [#"{"a": "x}y\"", "b": [1, {"c": 2}]}"#, #"["ü"]"#, #""s\"t""#, "12", "{}", "-3.5"]
        let bytes = Array(text.utf8)
        for chunkSize in [1, 2, 3, 7, bytes.count] {
            var splitter = JSONStreamSplitter()
            var documents: [String] = []
            var offset = 0
            while offset < bytes.count {
                documents += splitter.append(Array(bytes[offset..<min(offset + chunkSize, bytes.count)]))
                offset += chunkSize
            }
            if let rest = splitter.finish() { documents.append(rest) }
            #expect(documents == expected, "chunk size \(chunkSize)")
        }
    }

    @Test("an unfinished document is handed over at the end, whitespace is not")
    func unfinished() {
        var splitter = JSONStreamSplitter()
        #expect(splitter.append(Array(#"{"a": 1} {"b": "#.utf8)) == [#"{"a": 1}"#])
        #expect(splitter.finish() == #"{"b": "#)
        var blank = JSONStreamSplitter()
        #expect(blank.append(Array(" \n ".utf8)).isEmpty)
        #expect(blank.finish() == nil)
    }
}
