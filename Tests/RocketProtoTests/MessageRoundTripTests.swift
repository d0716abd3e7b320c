import Foundation
import RocketMQAPI
import RocketMQTestingSchema
import RocketProto
import Testing

@Suite("Generated messages round-trip through protobuf-c")
struct MessageRoundTripTests {
    @Test("every field kind with edge values survives encode and decode")
    func everyFieldKindRoundTrips() throws {
        let original = everyFieldSet()
        let decoded = try AllFields(serializedBytes: original.serializedBytes())
        #expect(decoded == original)
    }

    @Test("a default message encodes to zero bytes and decodes back to defaults")
    func defaultMessageIsEmpty() throws {
        #expect(AllFields().serializedBytes().isEmpty)
        let decoded = try AllFields(serializedBytes: [UInt8]())
        #expect(decoded == AllFields())
        #expect(decoded.fPoint == nil)
        #expect(decoded.oInt32 == nil)
        #expect(decoded.choice == nil)
    }

    @Test("encodings match the protobuf wire format byte for byte")
    func wireFormatMatchesSpecification() throws {
        // Field 1 varint 150: the protobuf encoding guide's example.
        #expect(Rocketmq_Testing_V1_FewFields(fInt32: 150).serializedBytes() == [0x08, 0x96, 0x01])
        // Field 14, length-delimited "testing".
        #expect(Rocketmq_Testing_V1_FewFields(fString: "testing").serializedBytes() == [0x72, 0x07] + Array("testing".utf8))
        // sint32 -1 zigzags to 1; int32 -1 is a 10-byte varint.
        var zigzag = AllFields()
        zigzag.fSint32 = -1
        #expect(zigzag.serializedBytes() == [0x28, 0x01])
        var negative = AllFields()
        negative.fInt32 = -1
        #expect(negative.serializedBytes() == [0x08] + [UInt8](repeating: 0xFF, count: 9) + [0x01])
        // Repeated scalars are packed in proto3: field 21, length 3, varints 1 2 3.
        var packed = AllFields()
        packed.rInt32 = [1, 2, 3]
        #expect(packed.serializedBytes() == [0xAA, 0x01, 0x03, 0x01, 0x02, 0x03])
    }

    @Test("each oneof member round-trips and setting one replaces another")
    func oneofMembersRoundTrip() throws {
        let choices: [AllFields.OneOf_Choice] = [.cString(""), .cString("x"), .cPoint(Point()), .cMood(.happy), .cMood(.UNRECOGNIZED(7)), .cInt64(0)]
        for choice in choices {
            let decoded = try AllFields(serializedBytes: AllFields(choice: choice).serializedBytes())
            #expect(decoded.choice == choice)
        }
        // Two members on the wire: the last one wins, as in every protobuf implementation.
        let both = AllFields(choice: .cString("first")).serializedBytes() + AllFields(choice: .cInt64(5)).serializedBytes()
        #expect(try AllFields(serializedBytes: both).choice == .cInt64(5))
    }

    @Test("proto3 optional fields keep presence even at their default value")
    func optionalPresenceSurvives() throws {
        let present = AllFields(oInt32: 0, oString: "", oBool: false)
        let bytes = present.serializedBytes()
        #expect(!bytes.isEmpty)
        let decoded = try AllFields(serializedBytes: bytes)
        #expect(decoded.oInt32 == 0)
        #expect(decoded.oString == "")
        #expect(decoded.oBool == false)
        #expect(decoded.oPoint == nil)
    }

    @Test("fields unknown to a reader are kept and re-emitted unchanged")
    func unknownFieldsArePreserved() throws {
        let full = everyFieldSet()
        let narrow = try Rocketmq_Testing_V1_FewFields(serializedBytes: full.serializedBytes())
        #expect(narrow.fInt32 == full.fInt32)
        #expect(narrow.fString == full.fString)
        #expect(!narrow.unknownFields.isEmpty)
        let back = try AllFields(serializedBytes: narrow.serializedBytes())
        #expect(back == full)
    }

    @Test("enum values this build does not know survive a round trip")
    func unknownEnumValuesSurvive() throws {
        let message = AllFields(fShade: .UNRECOGNIZED(12345), rShade: [.UNRECOGNIZED(-3)])
        let decoded = try AllFields(serializedBytes: message.serializedBytes())
        #expect(decoded.fShade == .UNRECOGNIZED(12345))
        #expect(decoded.fShade.rawValue == 12345)
        #expect(decoded.rShade == [.UNRECOGNIZED(-3)])
    }

    @Test("malformed bytes are rejected with a decoding error naming the message")
    func malformedBytesThrow() {
        let samples: [[UInt8]] = [
            [0x0A, 0xFF],  // length-delimited field whose length runs past the end
            [0x72, 0x05, 0x61],  // string field truncated
            [0x08],  // varint tag with no value
            [0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],  // varint over 10 bytes
            [0x07],  // wire type 7 does not exist
        ]
        for bytes in samples {
            #expect(throws: ProtoDecodingError.self) { try AllFields(serializedBytes: bytes) }
        }
        let error = #expect(throws: ProtoDecodingError.self) { try AllFields(serializedBytes: [0x0A, 0xFF]) }
        #expect(error?.messageName == "rocketmq.testing.v1.AllFields")
    }

    @Test("maps encode in key order, so equal messages have equal bytes")
    func mapEncodingIsDeterministic() throws {
        var message = AllFields()
        for index in 0..<200 { message.mStringString["key-\(index)"] = "value-\(index)" }
        message.mBoolShade = [true: .dark, false: .light]
        let first = message.serializedBytes()
        var copy = AllFields()
        for index in (0..<200).reversed() { copy.mStringString["key-\(index)"] = "value-\(index)" }
        copy.mBoolShade = [false: .light, true: .dark]
        #expect(copy.serializedBytes() == first)
        #expect(try AllFields(serializedBytes: first) == message)
    }

    @Test("a message larger than the decoder's stack scratch decodes intact, again and again")
    func decodingSpillsPastTheScratchSpace() throws {
        var message = AllFields()
        // Growing strings: the first fit in the scratch area, the rest are allocated on the heap.
        message.rString = (0..<64).map { String(repeating: Character(UnicodeScalar(UInt8(97 + $0 % 26))), count: 8 * $0) }
        message.rBytes = [[1, 2, 3], Array(repeating: 7, count: 2048), []]
        let bytes = message.serializedBytes()
        for _ in 0..<100 {
            #expect(try AllFields(serializedBytes: bytes) == message)
        }
        // What spilled to the heap is freed: 10,000 decodes would leak ~180 MB otherwise.
        let before = try #require(residentBytes())
        for _ in 0..<10_000 { _ = try AllFields(serializedBytes: bytes) }
        let growth = try #require(residentBytes()) - before
        #expect(growth < 64 << 20, "resident memory grew by \(growth >> 20) MiB over 10,000 decodes")
        // A malformed tail after valid fields: what was unpacked so far is freed, nothing leaks into the next decode.
        #expect(throws: ProtoDecodingError.self) { try AllFields(serializedBytes: bytes + [0xFF, 0xFF, 0xFF]) }
        #expect(try AllFields(serializedBytes: bytes) == message)
    }

    @Test("a large bytes field (8 MiB) round-trips intact")
    func largeBytesRoundTrip() throws {
        var message = AllFields()
        message.fBytes = (0..<(8 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let decoded = try AllFields(serializedBytes: message.serializedBytes())
        #expect(decoded.fBytes == message.fBytes)
    }

    @Test("a message holding its own type (singly, repeated, in a oneof) round-trips at depth")
    func selfReferencingMessageRoundTrips() throws {
        typealias Tree = Rocketmq_Testing_V1_Tree
        // A chain 200 deep through the singular field, with repeated and oneof children on the way.
        var tree = Tree(name: "leaf", extra: .note("end"))
        for depth in 0..<200 {
            let children = depth % 50 == 0 ? [Tree(name: "c\(depth)"), Tree(extra: .only(Tree(name: "o\(depth)")))] : []
            tree = Tree(name: "n\(depth)", left: tree, children: children)
        }
        let decoded = try Tree(serializedBytes: tree.serializedBytes())
        #expect(decoded == tree)
        var node: Tree? = decoded
        var depth = 0
        while let next = node?.left { node = next; depth += 1 }
        #expect(depth == 200)
        #expect(node?.name == "leaf" && node?.extra == .note("end"))
        #expect(decoded.children.isEmpty && decoded.left?.name == "n198")
    }

    @Test("a copy of a message is independent: changing one in place leaves the other as it was")
    func copiesHaveValueSemantics() {
        // AllFields (more than 16 fields) and Message (singular message fields) keep their
        // fields in storage shared between copies until one of them changes.
        var original = AllFields(fString: "a", fPoint: Point(x: 1, y: 2), rString: ["x"])
        var copy = original
        #expect(copy == original)
        copy.fPoint?.x = 10
        copy.rString.append("y")
        copy.unknownFields = UnknownFields(fields: [.init(number: 99, wireType: 0, data: [1])])
        #expect(original.fPoint == Point(x: 1, y: 2) && original.rString == ["x"] && original.unknownFields.isEmpty)
        #expect(copy.fPoint == Point(x: 10, y: 2) && copy.rString == ["x", "y"])
        #expect(copy != original)
        original.fString = "b"
        #expect(copy.fString == "a")
        // Equal contents in different storage are equal.
        #expect(AllFields(fString: "same") == AllFields(fString: "same"))

        let message = Apache_Rocketmq_V2_Message(topic: .init(name: "t"), systemProperties: .init(tag: "x"), body: [1])
        var changed = message
        changed.systemProperties?.tag = "y"
        changed.topic?.name = "u"
        #expect(message.systemProperties?.tag == "x" && message.topic?.name == "t")
        #expect(changed.systemProperties?.tag == "y" && changed.topic?.name == "u" && changed.body == [1])
    }

    @Test("fields named like the generated storage's own members round-trip")
    func storageNamesDoNotCollideWithFields() throws {
        typealias Clash = Rocketmq_Testing_V1_NameClash
        var clash = Clash(storage: .init(s: "inner"), copy: 7, uniqueStorage: "u", `inout`: "io", result: "r", l: "l")
        let copy = clash
        clash.storage?.s = "changed"
        clash.copy = 8
        #expect(copy.storage?.s == "inner" && copy.copy == 7)
        #expect(try Clash(serializedBytes: copy.serializedBytes()) == copy)
        #expect(try Clash(serializedBytes: clash.serializedBytes()) == clash)
    }

    @Test("enum names follow the .proto and strip the enum-name prefix for Swift cases")
    func enumNamesMapBothWays() {
        #expect(Rocketmq_Testing_V1_Shade.light.protoName == "SHADE_LIGHT")
        #expect(Rocketmq_Testing_V1_Shade(protoName: "SHADE_DARK") == .dark)
        #expect(Rocketmq_Testing_V1_Shade(protoName: "dark") == nil)
        #expect(Apache_Rocketmq_V2_Code(rawValue: 40401) == .messageNotFound)
        #expect(Apache_Rocketmq_V2_Code.ok.rawValue == 20000)
        #expect(Apache_Rocketmq_V2_Code().rawValue == 0)
    }
}

/// This process's resident memory (VmRSS), or `nil` where /proc is not readable.
private func residentBytes() -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }.map { $0 * 1024 }
    }
    return nil
}
