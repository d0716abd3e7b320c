import RocketMQAPI

/// One `host:port` a broker is reached at, parsed: `127.0.0.1:8081`, `[::1]:8081`, `broker-a.local:8081`.
public struct BrokerEndpoint: Sendable, Hashable, CustomStringConvertible {
    /// The host without brackets.
    public var host: String
    /// The port, 1...65535.
    public var port: Int
    /// How clients should read ``host``: an IPv4 or IPv6 literal, or a name to resolve.
    public var scheme: Apache_Rocketmq_V2_AddressScheme

    /// Parses `host:port`; `nil` unless the port is 1...65535 and the host is not blank.
    public init?(parsing text: String) {
        let host: Substring
        let port: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            port = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            port = text[text.index(after: colon)...]
            if host.contains(":") { return nil }  // a bare IPv6 literal needs brackets
        }
        guard !host.isEmpty, !host.contains(where: \.isWhitespace), let number = Int(port), (1...65535).contains(number) else { return nil }
        self.host = String(host)
        self.port = number
        if host.contains(":") {
            scheme = .ipv6
        } else if Self.isIPv4(host) {
            scheme = .ipv4
        } else {
            scheme = .domainName
        }
    }

    public var description: String {
        scheme == .ipv6 ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// The client-facing address.
    public var address: Apache_Rocketmq_V2_Address {
        Apache_Rocketmq_V2_Address(host: host, port: Int32(port))
    }

    private static func isIPv4(_ host: Substring) -> Bool {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { part in
            !part.isEmpty && part.count <= 3 && part.allSatisfy(\.isASCII) && part.allSatisfy(\.isNumber) && (Int(part) ?? 256) <= 255
        }
    }
}
