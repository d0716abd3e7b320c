import RocketMQAPI
import RocketMQTestingSchema
import RocketProto
import Testing

@testable import RocketMQAdmin

@Suite("DescriptorPool and SchemaPrinter")
struct DescriptorPoolTests {
    @Test("methods resolve by service/method and service.method; misses name what is missing")
    func methods() throws {
        let pool = try testPool()
        let unary = try pool.method("rocketmq.testing.v1.Echo/Unary")
        #expect(unary.kind == .unary && unary.inputType == "rocketmq.testing.v1.AllFields")
        #expect(try pool.method("rocketmq.testing.v1.Echo.Bidi").kind == .bidirectionalStreaming)
        #expect(try pool.method("rocketmq.testing.v1.Echo/ClientStream").kind == .clientStreaming)
        #expect(throws: AdminError.unknownService("rocketmq.testing.v1.Nope")) { _ = try pool.method("rocketmq.testing.v1.Nope/Unary") }
        #expect(throws: AdminError.unknownMethod(service: "rocketmq.testing.v1.Echo", method: "Nope")) { _ = try pool.method("rocketmq.testing.v1.Echo/Nope") }
        #expect(throws: AdminError.invalidMethodName("Echo")) { _ = try pool.method("Echo") }
    }

    @Test("fields carry JSON names, packing, presence, oneofs and map entries")
    func fields() throws {
        let type = try allFieldsType(try testPool())
        let packed = try #require(type.field(named: "r_int32"))
        #expect(packed.isPacked && packed.jsonName == "rInt32")
        #expect(try #require(type.field(named: "r_string")).isPacked == false)
        #expect(try #require(type.field(named: "o_int32")).hasPresence)
        #expect(try #require(type.field(named: "o_int32")).oneofIndex == nil, "proto3 optional is not a real oneof")
        #expect(try #require(type.field(named: "c_point")).oneofIndex != nil)
        #expect(try #require(type.field(named: "f_int32")).hasPresence == false)
        let map = try #require(type.field(named: "mInt32Point"))
        #expect(map.mapEntry?.key.field.kind == .int32 && map.mapEntry?.value.field.typeName == "rocketmq.testing.v1.AllFields.Point")
    }

    @Test("a field naming a missing type is rejected")
    func missingType() throws {
        var file = Google_Protobuf_FileDescriptorProto()
        file.name = "broken.proto"
        file.package = "broken"
        file.syntax = "proto3"
        var message = Google_Protobuf_DescriptorProto()
        message.name = "M"
        var field = Google_Protobuf_FieldDescriptorProto()
        field.name = "x"
        field.number = 1
        field.type = .message
        field.typeName = ".broken.Missing"
        field.label = .optional
        message.field = [field]
        file.messageType = [message]
        #expect(throws: AdminError.self) { _ = try DescriptorPool(files: [file]) }
    }

    @Test("describe prints services and messages as grpcurl does")
    func describe() throws {
        let printer = SchemaPrinter(pool: try testPool())
        let service = try printer.describe("rocketmq.testing.v1.Echo")
        #expect(service.hasPrefix("rocketmq.testing.v1.Echo is a service:\nservice Echo {\n"))
        #expect(service.contains("  rpc Bidi ( stream .rocketmq.testing.v1.AllFields ) returns ( stream .rocketmq.testing.v1.AllFields );"))
        let message = try printer.describe("rocketmq.testing.v1.AllFields")
        #expect(message.contains("  map<int32, .rocketmq.testing.v1.AllFields.Point> m_int32_point = 42;"))
        #expect(message.contains("  optional int32 o_int32 = 61;"))
        #expect(message.contains("  oneof choice {\n    string c_string = 51;"))
        #expect(try printer.describe("rocketmq.testing.v1.Shade").contains("SHADE_DARK = 2;"))
        #expect(throws: AdminError.unknownSymbol("no.Such")) { _ = try printer.describe("no.Such") }
    }

    @Test("addresses parse as HOST:PORT and [v6]:PORT")
    func addresses() {
        #expect(ServerAddress(parsing: "127.0.0.1:50051") == ServerAddress(host: "127.0.0.1", port: 50051))
        #expect(ServerAddress(parsing: "[::1]:80") == ServerAddress(host: "::1", port: 80))
        #expect(ServerAddress(parsing: "localhost") == nil)
        #expect(ServerAddress(parsing: "host:0") == nil)
        #expect(ServerAddress(parsing: "::1:80") == nil)
    }

    @Test("text format prints nested messages, enums and escaped bytes, and parses back")
    func textFormat() throws {
        let pool = try testPool()
        let type = try allFieldsType(pool)
        var m = AllFields()
        m.fPoint = Point(x: 1)
        m.fShade = .dark
        m.fBytes = [0, 0x41]
        m.rInt32 = [1, 2]
        m.mStringString = ["k": "v"]
        let dynamic = try WireCodec.decode(m.serializedBytes(), as: type, pool: pool)
        let text = TextFormat(pool: pool).string(from: dynamic)
        #expect(text.contains("f_point {\n  x: 1\n}"))
        #expect(text.contains("f_shade: SHADE_DARK"))
        #expect(text.contains(#"f_bytes: "\000A""#))
        let back = try TextFormatParser.parse(text, as: type, pool: pool)
        #expect(try AllFields(serializedBytes: WireCodec.encode(back)) == m)
    }
}

@Suite("MessageTemplate")
struct MessageTemplateTests {
    @Test("a template fills every field once and parses back as input")
    func template() throws {
        let pool = try testPool()
        let type = try allFieldsType(pool)
        let template = MessageTemplate.make(type, pool: pool)
        #expect(template["r_int32"] == .list([.int32(0)]))
        #expect(template["m_int32_point"] == .map([.init(key: .int32(0), value: .message(DynamicMessage(descriptor: try #require(pool.message(named: "rocketmq.testing.v1.AllFields.Point")))))]))
        #expect(template["c_string"] == .string(""), "the first oneof member")
        #expect(template["c_point"] == nil)
        let mapping = JSONMapping(pool: pool, emitDefaults: true)
        let json = try mapping.string(from: template)
        #expect(try mapping.message(fromJSON: json, as: type) == template)
    }
}
