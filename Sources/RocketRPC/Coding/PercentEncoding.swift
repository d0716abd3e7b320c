/// The percent-encoding gRPC uses for `grpc-message`. Stateless; safe from any thread.
///
/// Bytes of the UTF-8 form outside printable ASCII 0x20...0x7E, and `%` itself, become `%XX`.
/// Decoding is lenient, as the spec asks: a malformed `%` sequence is kept as is.
enum PercentEncoding {
    static func encode(_ text: String) -> String {
        let utf8 = text.utf8
        if utf8.allSatisfy({ $0 >= 0x20 && $0 <= 0x7E && $0 != 0x25 }) { return text }
        let hex: [UInt8] = Array("0123456789ABCDEF".utf8)
        var out = [UInt8]()
        out.reserveCapacity(utf8.count * 3)
        for b in utf8 {
            if b >= 0x20 && b <= 0x7E && b != 0x25 {
                out.append(b)
            } else {
                out.append(0x25)
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 0xF)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ text: String) -> String {
        let bytes = Array(text.utf8)
        guard bytes.contains(0x25) else { return text }
        var out = [UInt8]()
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if bytes[i] == 0x25, i + 2 < bytes.count,
                let hi = hexValue(bytes[i + 1]), let lo = hexValue(bytes[i + 2])
            {
                out.append(hi << 4 | lo)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x41...0x46: c - 0x41 + 10
        case 0x61...0x66: c - 0x61 + 10
        default: nil
        }
    }
}
