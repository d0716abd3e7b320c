import Foundation

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

/// A URL path segment or query value, percent-encoded: everything but RFC 3986's unreserved
/// ASCII characters.
func queryEncoded(_ text: String) -> String {
    text.addingPercentEncoding(withAllowedCharacters: unreserved) ?? text
}

private let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

/// Which broker of the cluster a request looks at (`?broker=host:port`), for the links its page
/// makes; nil: the console's own broker.
enum ConsoleRequest {
    @TaskLocal static var broker: String?
}

/// `path` as a link on the current page: with the viewed broker kept in its query, if it is not
/// the console's own.
func href(_ path: String) -> String {
    guard let broker = ConsoleRequest.broker else { return path }
    return path + (path.contains("?") ? "&" : "?") + "broker=" + queryEncoded(broker)
}

/// A whole page: the navigation, a title and the body (already HTML).
func page(title: String, body: String) -> String {
    """
    <!doctype html>
    <html lang="en"><head><meta charset="utf-8"><title>\(escaped(title)) · rocketmq-swift</title>
    <style>
    body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222}
    nav{background:#20344d;padding:.6em 1em;color:#cfd8e3}nav a{color:#fff;margin-right:1.2em;text-decoration:none}
    main{padding:1em 1.5em}table{border-collapse:collapse;margin:.5em 0 1.5em}
    th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}th{background:#f3f5f8}
    td.n{text-align:right;font-variant-numeric:tabular-nums}.error{color:#a00}pre{white-space:pre-wrap;margin:0}
    </style></head><body>
    <nav><a href="\(href("/"))">Overview</a><a href="\(href("/topics"))">Topics</a><a href="\(href("/groups"))">Groups</a><a href="\(href("/messages"))">Messages</a><a href="\(href("/config"))">Configuration</a>\(ConsoleRequest.broker.map { "<span>broker \(escaped($0)) · <a href=\"/\">back to this console's broker</a></span>" } ?? "")</nav>
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
