import Foundation
import NIOSSL
import RocketMQClient
import RocketRPC
import Testing

/// A self-signed P-256 certificate for "localhost" and 127.0.0.1 (the one RocketRPCTests use;
/// `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 36500
/// -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1`). Test use only.
enum TestCertificate {
    static let certificatePEM = """
-----BEGIN CERTIFICATE-----
MIIBnDCCAUGgAwIBAgIUaJlac5aiKCSgRuGvZDIj2SudOKcwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyNTE1MjU0NVoYDzIxMjYxMTAx
MTUyNTQ1WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAASdOowPgX56+kqa0zZk0aLbJiHGTS+bDw4dptA1uJ7npNO3CB/r9McC
u0jr3aa7BuBmHXJX8Wel1DhAO46Yy2Dho28wbTAdBgNVHQ4EFgQUy0H3GCHH0FmZ
dxFdP+96bjs/zxEwHwYDVR0jBBgwFoAUy0H3GCHH0FmZdxFdP+96bjs/zxEwDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARgglsb2NhbGhvc3SHBH8AAAEwCgYIKoZI
zj0EAwIDSQAwRgIhAKhInSXvd/lVsqkW+7rWGcbDfaXVe/kcff8tUyvxK3pEAiEA
pVb+jX1uoOfQIlfmwZnHBH0u4Gzw3jjgViNSU2nBNkc=
-----END CERTIFICATE-----
"""
    static let privateKeyPEM = """
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgSoOGbdUwiBTmAohH
1O9smN5DfYToiOTEzV51L9orxFChRANCAASdOowPgX56+kqa0zZk0aLbJiHGTS+b
Dw4dptA1uJ7npNO3CB/r9McCu0jr3aa7BuBmHXJX8Wel1DhAO46Yy2Dh
-----END PRIVATE KEY-----
"""
}

@Suite struct TLSTests {
    @Test func everyCallRunsOverTLSWhenTheConfigurationSaysSo() async throws {
        // mqbroker has no TLS flags yet: host the broker's MessagingService in-process, TLS-only
        // as far as this client can tell (it would fail against cleartext).
        let certificate = try NIOSSLCertificate(bytes: Array(TestCertificate.certificatePEM.utf8), format: .pem)
        let key = try NIOSSLPrivateKey(bytes: Array(TestCertificate.privateKeyPEM.utf8), format: .pem)
        let inProcess = try await InProcessBroker.start(
            tls: TLSConfiguration.makeServerConfiguration(certificateChain: [.certificate(certificate)], privateKey: .privateKey(key)))
        let port = inProcess.port

        var configuration = try ClientConfiguration(endpoints: "127.0.0.1:\(port)")
        configuration.tls = ChannelConfiguration.TLS(trustRoots: .certificates([certificate]), serverName: "localhost")
        #expect(configuration.usesTLS)
        let topic = unique("secure")
        let producer = try await Producer.start(configuration: configuration, topics: [topic])
        let receipt = try await producer.send(Message(topic: topic, body: Array("over tls".utf8)))
        await producer.shutdown()
        let consumer = try await SimpleConsumer.start(
            configuration: configuration, group: unique("g"), subscriptions: [topic: .all], awaitDuration: .milliseconds(500))
        let received = try await receiveAll(consumer, count: 1, timeout: .seconds(5))
        await consumer.shutdown()

        // A client that does not trust the certificate is refused.
        var untrusting = configuration
        untrusting.usesTLS = false
        untrusting.usesTLS = true
        await #expect(throws: RocketMQError.self) {
            _ = try await Producer.start(configuration: untrusting, topics: [topic])
        }
        await inProcess.stop()
        #expect(received.map(\.messageId) == [receipt.messageId])
    }
}
