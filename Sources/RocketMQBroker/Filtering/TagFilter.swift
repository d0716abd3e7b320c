/// A subscription's tag expression: `*` (everything) or tags joined by `||`.
struct TagFilter: Sendable, Equatable {
    /// nil means every message matches.
    let tags: Set<String>?

    static let all = TagFilter(tags: nil)

    init(tags: Set<String>?) { self.tags = tags }

    /// Parses `*`, an empty expression (everything) or `a || b || c`.
    /// - Throws: `BrokerError.illegalFilter` for an expression with an empty alternative.
    init(expression: String) throws(BrokerError) {
        let trimmed = expression.trimmingWhitespace
        if trimmed.isEmpty || trimmed == "*" {
            tags = nil
            return
        }
        let parts = trimmed.split(separator: "||", omittingEmptySubsequences: false).map { String($0).trimmingWhitespace }
        guard !parts.contains(where: \.isEmpty) else {
            throw .illegalFilter("tag expression \(expression.debugDescription) has an empty alternative")
        }
        tags = parts.contains("*") ? nil : Set(parts)
    }

    func matches(_ tag: String?) -> Bool {
        guard let tags else { return true }
        return tags.contains(tag ?? "")
    }
}

extension String {
    var trimmingWhitespace: String {
        var scalars = Substring(self)
        while let first = scalars.first, first.isWhitespace { scalars.removeFirst() }
        while let last = scalars.last, last.isWhitespace { scalars.removeLast() }
        return String(scalars)
    }

    /// Whether the string is empty or only whitespace (as `Character.isWhitespace` says); ASCII
    /// text is decided byte by byte, without Unicode property look-ups.
    var isBlank: Bool {
        for byte in utf8 where !byte.isASCIIWhitespace {
            return byte >= 0x80 ? allSatisfy(\.isWhitespace) : false
        }
        return true
    }
}

extension UInt8 {
    /// The ASCII characters `Character.isWhitespace` calls whitespace: tab, LF, VT, FF, CR, space.
    var isASCIIWhitespace: Bool { (0x09...0x0D).contains(self) || self == 0x20 }
}
