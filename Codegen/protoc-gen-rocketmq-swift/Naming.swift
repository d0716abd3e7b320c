/// How protobuf names become Swift names. Follows swift-protobuf's conventions so Swift
/// developers find familiar spellings: `apache.rocketmq.v2.Message` → `Apache_Rocketmq_V2_Message`,
/// `message_type` → `messageType`, enum `Code.CODE_UNSPECIFIED` → `.unspecified`.
enum Naming {
    static let swiftKeywords: Set<String> = [
        "associatedtype", "class", "deinit", "enum", "extension", "fileprivate", "func", "import", "init",
        "inout", "internal", "let", "open", "operator", "private", "precedencegroup", "protocol", "public",
        "rethrows", "static", "struct", "subscript", "typealias", "var", "break", "case", "catch", "continue",
        "default", "defer", "do", "else", "fallthrough", "for", "guard", "if", "in", "repeat", "return",
        "throw", "switch", "where", "while", "Any", "as", "await", "false", "is", "nil", "self", "Self",
        "super", "throws", "true", "try", "Type", "Protocol", "some", "any",
    ]

    /// Type names that would shadow Swift or runtime names inside generated code.
    static let reservedTypeNames: Set<String> = [
        "Type", "Protocol", "Self", "Any", "Error", "String", "Int", "Bool", "Double", "Float",
        "Array", "Dictionary", "Optional", "Sendable", "Equatable", "Hashable", "Client", "Method",
        "ServiceProtocol", "_Storage",
    ]

    /// `apache.rocketmq.v2` → `Apache_Rocketmq_V2_`; empty package → empty prefix.
    static func packagePrefix(_ package: String) -> String {
        guard !package.isEmpty else { return "" }
        return package.split(separator: ".").map { component in
            component.split(separator: "_").map { upperFirst(String($0)) }.joined()
        }.joined(separator: "_") + "_"
    }

    static func typeName(_ name: String) -> String {
        reservedTypeNames.contains(name) ? name + "Message" : name
    }

    /// `message_type` → `messageType`, `HTTPHeader` → `httpheader`-style lowering of the first run only.
    static func lowerCamel(_ name: String) -> String {
        var result = ""
        var upperNext = false
        for character in name {
            if character == "_" {
                upperNext = !result.isEmpty
                continue
            }
            if upperNext {
                result.append(contentsOf: character.uppercased())
                upperNext = false
            } else {
                result.append(character)
            }
        }
        return lowerLeadingCapitals(result)
    }

    /// `UPPER_SNAKE` → `upperSnake` (enum values).
    static func lowerCamelFromUpperSnake(_ name: String) -> String {
        let parts = name.split(separator: "_").map { $0.lowercased() }
        guard let first = parts.first else { return name }
        return first + parts.dropFirst().map(upperFirst).joined()
    }

    /// `EmptyCall` → `emptyCall`.
    static func methodName(_ name: String) -> String {
        lowerLeadingCapitals(name)
    }

    /// A Swift identifier, backquoted when it is a keyword.
    static func escaped(_ identifier: String) -> String {
        swiftKeywords.contains(identifier) ? "`\(identifier)`" : identifier
    }

    static func upperFirst(_ string: String) -> String {
        guard let first = string.first else { return string }
        return first.uppercased() + string.dropFirst()
    }

    /// Lowercases the leading capital run: `URLPath` → `urlPath`, `Foo` → `foo`.
    private static func lowerLeadingCapitals(_ string: String) -> String {
        let characters = Array(string)
        var end = 0
        while end < characters.count, characters[end].isUppercase { end += 1 }
        if end == 0 { return string }
        // Keep the last capital of a run followed by lowercase: it starts the next word.
        if end > 1, end < characters.count, characters[end].isLowercase { end -= 1 }
        return String(characters[..<end]).lowercased() + String(characters[end...])
    }

    /// Case names for an enum's values: the enum-name prefix is dropped when every value has it
    /// and the rest stays a valid, unique identifier.
    static func enumCaseNames(_ enumeration: EnumDef) -> [String] {
        let prefix = enumeration.name.uppercasedSnake + "_"
        let stripped = enumeration.values.map { value -> String in
            var name = value.name
            if name.hasPrefix(prefix), name.count > prefix.count { name.removeFirst(prefix.count) }
            return name
        }
        func valid(_ names: [String]) -> Bool {
            Set(names).count == names.count && names.allSatisfy { !($0.first?.isNumber ?? true) }
        }
        let chosen = valid(stripped.map(lowerCamelFromUpperSnake)) ? stripped : enumeration.values.map(\.name)
        return chosen.map(lowerCamelFromUpperSnake)
    }
}

extension String {
    /// `ServingStatus` → `SERVING_STATUS`.
    var uppercasedSnake: String {
        var result = ""
        for (index, character) in enumerated() {
            if character.isUppercase, index > 0 { result.append("_") }
            result.append(contentsOf: character.uppercased())
        }
        return result
    }
}
