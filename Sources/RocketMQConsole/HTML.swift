/// Text made safe for HTML: everything shown on a page that came from the cluster (topic names,
/// properties, message bodies) goes through here.
func escaped(_ text: String) -> String {
    var out = ""
    out.reserveCapacity(text.utf8.count)
    for c in text.unicodeScalars {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        default: out.unicodeScalars.append(c)
        }
    }
    return out
}

/// A query-string component, percent-encoded.
func queryEncoded(_ text: String) -> String {
    var out = ""
    for byte in text.utf8 {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
            out.unicodeScalars.append(Unicode.Scalar(byte))
        default:
            out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
        }
    }
    return out
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

/// A whole page: the navigation, a title and the body (already HTML).
func page(title: String, body: String) -> String {
    """
    <!doctype html>
    <html lang="en"><head><meta charset="utf-8"><title>\(escaped(title)) · rocketmq-swift</title>
    <style>
    body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222}
    nav{background:#20344d;padding:.6em 1em}nav a{color:#fff;margin-right:1.2em;text-decoration:none}
    main{padding:1em 1.5em}table{border-collapse:collapse;margin:.5em 0 1.5em}
    th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}th{background:#f3f5f8}
    td.n{text-align:right;font-variant-numeric:tabular-nums}.error{color:#a00}pre{white-space:pre-wrap;margin:0}
    </style></head><body>
    <nav><a href="/">Overview</a><a href="/topics">Topics</a><a href="/groups">Groups</a><a href="/messages">Messages</a><a href="/config">Configuration</a></nav>
    <main><h1>\(escaped(title))</h1>
    \(body)
    </main></body></html>
    """
}

/// A table from a header row and rows of cells (already HTML).
func table(_ header: [String], _ rows: [[String]], numeric: Set<Int> = []) -> String {
    var html = "<table><tr>" + header.map { "<th>\(escaped($0))</th>" }.joined() + "</tr>"
    for row in rows {
        html += "<tr>" + row.enumerated().map { numeric.contains($0.offset) ? "<td class=\"n\">\($0.element)</td>" : "<td>\($0.element)</td>" }.joined() + "</tr>"
    }
    return html + "</table>"
}
