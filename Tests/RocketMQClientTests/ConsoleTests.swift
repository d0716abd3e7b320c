import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import RocketMQClient
import Testing

/// The web console that `mqbroker --dev` serves next to the broker: every page is read from the
/// broker's Admin service, so what a client did shows up there.
@Suite struct ConsoleTests {
    private func get(_ port: Int, _ path: String, host: String? = nil) async throws -> (status: Int, html: String) {
        let url = try #require(URL(string: "http://127.0.0.1:\(port)\(path)"))
        var request = URLRequest(url: url)
        if let host { request.setValue(host, forHTTPHeaderField: "Host") }
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = try #require(response as? HTTPURLResponse)
        return (http.statusCode, String(decoding: data, as: UTF8.self))
    }

    @Test func pagesShowTopicsGroupsLagMessagesAndConfiguration() async throws {
        try await withDevBroker(console: true) { broker, configuration in
            let port = try #require(await broker.consolePort(), "the dev broker announced no console")
            // `%` and `|` are legal in topic names: links to them must survive percent-encoding.
            let topic = unique("console") + "%|x"
            let group = unique("g")
            let producer = try await Producer.start(configuration: configuration, topics: [topic])
            var receipts: [SendReceipt] = []
            for index in 0..<5 {
                receipts.append(try await producer.send(Message(
                    topic: topic, body: Array("<b>order \(index)</b>".utf8), keys: ["key-\(index)"], properties: ["region": "eu"])))
            }
            await producer.shutdown()
            // A group that took two messages and acked them: three left to consume.
            let consumer = try await SimpleConsumer.start(
                configuration: configuration, group: group, subscriptions: [topic: .all], awaitDuration: .milliseconds(300))
            var taken = 0
            while taken < 2 {
                for message in try await consumer.receive(maxMessages: 2 - taken, invisibleDuration: .seconds(30)) {
                    try await consumer.ack(message)
                    taken += 1
                }
            }
            await consumer.shutdown()

            let overview = try await get(port, "/")
            #expect(overview.status == 200)
            #expect(overview.html.contains("<h1>Broker broker-a</h1>"))
            #expect(overview.html.contains("<td>Open transactions</td><td>0</td>"))
            #expect(overview.html.contains("<td>Delay messages pending</td><td>0</td>"))
            #expect(overview.html.contains("<td>Role</td><td>ASYNC_MASTER</td>"))
            #expect(overview.html.contains("No slave follows this broker."))
            #expect(overview.html.contains(">\(topic)</a>"))
            #expect(overview.html.contains(">\(group)</a>"))

            let encoded = try #require(topic.addingPercentEncoding(withAllowedCharacters: CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_.~"))))
            #expect(overview.html.contains("href=\"/topics/\(encoded)\""))
            let topicPage = try await get(port, "/topics/\(encoded)")
            #expect(topicPage.status == 200)
            #expect(topicPage.html.contains("5 messages stored"))

            let groupPage = try await get(port, "/groups/\(group)")
            #expect(groupPage.status == 200)
            #expect(groupPage.html.contains("Total lag: 3 messages."), "\(groupPage.html)")

            // Lookup by key and by id; the body is shown escaped, never as markup.
            let byKey = try await get(port, "/messages?topic=\(encoded)&key=key-3")
            #expect(byKey.html.contains("&lt;b&gt;order 3&lt;/b&gt;"))
            #expect(!byKey.html.contains("<b>order"))
            #expect(byKey.html.contains("region=eu"))
            let byId = try await get(port, "/messages?id=\(receipts[1].messageId)")
            #expect(byId.html.contains("&lt;b&gt;order 1&lt;/b&gt;"))
            // Looked up by id, a message shows its trace.
            #expect(byId.html.contains("<h2>Trace</h2>"), "\(byId.html)")
            #expect(byId.html.contains("<td>stored</td>"), "\(byId.html)")
            #expect(byId.html.contains("<th>Sent</th>") && byId.html.contains(" from "), "who sent it and when")
            #expect(byKey.html.contains("href=\"/messages?id=\(receipts[3].messageId)\""), "key results link to the message's own page")

            let config = try await get(port, "/config")
            #expect(config.status == 200)
            #expect(config.html.contains("flushMode") || config.html.contains("flush"))

            let topicList = try await get(port, "/topics")
            #expect(topicList.status == 200 && topicList.html.contains("href=\"/topics/\(encoded)\""))
            let groupList = try await get(port, "/groups")
            #expect(groupList.status == 200 && groupList.html.contains(">\(group)</a>"))

            // An unknown topic is a 404 page, not an error of the console.
            let missing = try await get(port, "/topics/\(unique("nosuch"))")
            #expect(missing.status == 404)

            // A page of another site that points its name at 127.0.0.1 (DNS rebinding) reads nothing.
            let rebound = try await get(port, "/", host: "attacker.example:\(port)")
            #expect(rebound.status == 421)
            #expect(!rebound.html.contains(topic))
            let byName = try await get(port, "/", host: "localhost:\(port)")
            #expect(byName.status == 200)

            // The console stops with the broker's graceful shutdown: SIGTERM still ends in a clean stop.
            broker.stop()
            #expect(broker.exitStatus == 0)
        }
    }
}
