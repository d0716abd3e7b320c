import Foundation
import NIOSSL
import RocketRPC
import Testing

/// A self-signed P-256 certificate for "localhost" and 127.0.0.1, valid for 100 years (made with
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

@Suite("TLS and cleartext on one port", .serialized, .timeLimit(.minutes(1)))
struct TLSTests {
    static func serverTLS() throws -> TLSConfiguration {
        let certificate = try NIOSSLCertificate(bytes: Array(TestCertificate.certificatePEM.utf8), format: .pem)
        let key = try NIOSSLPrivateKey(bytes: Array(TestCertificate.privateKeyPEM.utf8), format: .pem)
        return TLSConfiguration.makeServerConfiguration(certificateChain: [.certificate(certificate)], privateKey: .privateKey(key))
    }

    static func trustingTestCertificate() throws -> ChannelConfiguration.TLS {
        let certificate = try NIOSSLCertificate(bytes: Array(TestCertificate.certificatePEM.utf8), format: .pem)
        return ChannelConfiguration.TLS(trustRoots: .certificates([certificate]), serverName: "localhost")
    }

    @Test func tlsAndCleartextClientsAreBothServedOnTheSamePort() async throws {
        let tls = try Self.serverTLS()
        let h = try await TestHarness.start(server: { $0.tls = tls })
        // Cleartext h2c with prior knowledge.
        let plain: UnaryResponse<TestMessage> = try await h.channel.unary(EchoService.get, request: TestMessage("plain"), options: CallOptions())
        #expect(plain.message.text == "plain")
        // TLS with ALPN h2, verified against the test certificate.
        var configuration = ChannelConfiguration(host: "127.0.0.1", port: h.port)
        configuration.tls = try Self.trustingTestCertificate()
        let secure = RPCChannel(configuration: configuration)
        let r: UnaryResponse<TestMessage> = try await secure.unary(EchoService.get, request: TestMessage("secure"), options: CallOptions())
        #expect(r.message.text == "secure")
        let streamed = try await secure.serverStreaming(EchoService.expand, request: TestMessage("20:3000"), options: CallOptions()) { (stream: ResponseStream<TestMessage>) in
            var n = 0
            for try await _ in stream { n += 1 }
            return n
        }
        #expect(streamed == 20)
        await secure.close()
        await h.stop()
    }

    @Test func untrustedCertificateFailsTheCallAsUnavailable() async throws {
        let tls = try Self.serverTLS()
        let h = try await TestHarness.start(server: { $0.tls = tls })
        var configuration = ChannelConfiguration(host: "127.0.0.1", port: h.port)
        configuration.tls = ChannelConfiguration.TLS(serverName: "localhost")
        let channel = RPCChannel(configuration: configuration)
        let error = await #expect(throws: RPCError.self) {
            let _: UnaryResponse<TestMessage> = try await channel.unary(EchoService.get, request: TestMessage("x"), options: CallOptions(timeout: .seconds(5)))
        }
        #expect(error?.code == .unavailable)
        await channel.close()
        // Skipping verification connects.
        var insecure = ChannelConfiguration(host: "127.0.0.1", port: h.port)
        insecure.tls = ChannelConfiguration.TLS(insecureSkipVerify: true)
        let insecureChannel = RPCChannel(configuration: insecure)
        let r: UnaryResponse<TestMessage> = try await insecureChannel.unary(EchoService.get, request: TestMessage("ok"), options: CallOptions())
        #expect(r.message.text == "ok")
        await insecureChannel.close()
        await h.stop()
    }
}

@Suite("TLS interop with Python grpcio", .timeLimit(.minutes(1)), .enabled(if: PythonPeer.isAvailable))
struct TLSInteropTests {
    @Test func grpcioTLSClientNegotiatesH2WithOurServer() async throws {
        let tls = try TLSTests.serverTLS()
        let h = try await TestHarness.start(server: { $0.tls = tls })
        let certificatePath = try temporaryFile(Array(TestCertificate.certificatePEM.utf8))
        let script = try PythonPeer.writeScript(#"""
import sys, grpc
creds = grpc.ssl_channel_credentials(root_certificates=open(sys.argv[2], "rb").read())
ch = grpc.secure_channel("localhost:" + sys.argv[1], creds)
r = ch.unary_unary("/rocketrpc.test.Echo/Get")(b"\x0a\x03tls", timeout=10)
assert r == b"\x0a\x03tls", r
print("tls ok")
"""#)
        let port = h.port
        let (status, output) = await offPool { () -> (Int32, String) in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", script, String(port), certificatePath]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            do { try process.run() } catch { return (-1, "\(error)") }
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: data, as: UTF8.self))
        }
        #expect(status == 0 && output.contains("tls ok"), "\(output)")
        await h.stop()
    }
}
