import RocketMQTestingSchema
import RocketProto
import Testing

/// protobuf-c hands strings over as C strings: one holding a NUL, or bytes that are not UTF-8,
/// is refused when decoding instead of arriving cut short or with U+FFFD in it.
@Suite("String fields are checked before protobuf-c unpacks them")
struct StringFieldCheckTests {
    typealias Tree = Rocketmq_Testing_V1_Tree
    typealias AllFields = Rocketmq_Testing_V1_AllFields

    private func varint(_ value: Int) -> [UInt8] {
        var value = UInt64(value), out: [UInt8] = []
        while value >= 0x80 { out.append(UInt8(value & 0x7F) | 0x80); value >>= 7 }
        return out + [UInt8(value)]
    }

    /// A length-delimited field.
    private func field(_ number: Int, _ payload: [UInt8]) -> [UInt8] {
        varint(number << 3 | 2) + varint(payload.count) + payload
    }

    private func refusal(_ bytes: [UInt8], as type: (some ProtoMessage).Type) -> String? {
        do {
            _ = try type.init(serializedBytes: bytes)
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test func wellFormedUTF8OfEveryLengthDecodes() throws {
        // 1 to 4 bytes, and the edges of each range: U+007F, U+0080, U+07FF, U+0800, U+D7FF,
        // U+E000, U+FFFF, U+10000, U+10FFFF.
        let text = "café € 😀 \u{7F}\u{80}\u{7FF}\u{800}\u{D7FF}\u{E000}\u{FFFF}\u{10000}\u{10FFFF}"
        let decoded = try Tree(serializedBytes: field(1, Array(text.utf8)))
        #expect(decoded.name == text)
    }

    @Test(arguments: [
        [0xFF], [0x80], [0xC0, 0x80], [0xC1, 0xBF], [0xE0, 0x80, 0x80], [0xE0, 0x9F, 0xBF],
        [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF], [0xF0, 0x80, 0x80, 0x80], [0xF4, 0x90, 0x80, 0x80],
        [0xF5, 0x80, 0x80, 0x80], [0xE2, 0x82], [0xE2, 0x28, 0xA1], [0xF0, 0x9F, 0x98],
    ] as [[UInt8]])
    func bytesThatAreNotUTF8AreRefused(_ sequence: [UInt8]) {
        // Lone continuation bytes, overlong forms, surrogates, past U+10FFFF, cut short.
        let problem = refusal(field(1, Array("ok ".utf8) + sequence + Array(" ok".utf8)), as: Tree.self)
        #expect(problem?.contains("field 1 (name) of rocketmq.testing.v1.Tree is not valid UTF-8") == true, "\(sequence): \(problem ?? "decoded")")
    }

    @Test func aNULInsideAStringIsRefusedNotCutShort() {
        // Early, and past a run of ASCII the check reads eight bytes at a time.
        for text in ["orders\0x", String(repeating: "a", count: 21) + "\0" + String(repeating: "b", count: 9)] {
            let problem = refusal(field(1, Array(text.utf8)), as: Tree.self)
            #expect(problem?.contains("holds a NUL byte") == true, "\(problem ?? "decoded")")
        }
        let late = refusal(field(1, Array(String(repeating: "a", count: 17).utf8) + [0xC3]), as: Tree.self)
        #expect(late?.contains("is not valid UTF-8") == true, "\(late ?? "decoded")")
    }

    @Test func nestedRepeatedOneofAndMapStringsAreChecked() {
        let bad = Array("a\0b".utf8)
        let nested = field(2, field(1, bad))  // left.name
        let repeated = field(3, field(1, Array("fine".utf8))) + field(3, field(1, bad))  // children[1].name
        let oneof = field(4, field(5, bad))  // only.note
        for (what, bytes) in [("left", nested), ("children", repeated), ("only", oneof)] {
            #expect(refusal(bytes, as: Tree.self)?.contains("of rocketmq.testing.v1.Tree holds a NUL byte") == true, "\(what)")
        }
        // A map<string, string> entry: key 1, value 2.
        let entry = field(41, field(1, Array("k".utf8)) + field(2, [0xFF]))
        #expect(refusal(entry, as: AllFields.self)?.contains("is not valid UTF-8") == true)
    }

    @Test func bytesFieldsAndUnknownFieldsAreNotStrings() throws {
        // f_bytes (15) may hold anything; field 99 is unknown to the type and kept as it came.
        let bytes = field(15, [0x00, 0xFF, 0xC0]) + field(99, [0x00, 0xFF])
        let decoded = try AllFields(serializedBytes: bytes)
        #expect(decoded.fBytes == [0x00, 0xFF, 0xC0])
        #expect(decoded.serializedBytes() == bytes)
    }
}
