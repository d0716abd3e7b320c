import Foundation
import Synchronization
@testable import RocketMQClient
import RocketRPC
import Testing

@Suite struct ClientUnitTests {
    @Test func hmacSHA1MatchesRFC2202AndTheStandardSHA1Vectors() {
        #expect(HMACSHA1.hex(key: [UInt8](repeating: 0x0B, count: 20), message: Array("Hi There".utf8))
            == "b617318655057264e28bc0b6fb378c8ef146be00")
        #expect(HMACSHA1.hex(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))
            == "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
        // A key longer than the block size is hashed first.
        #expect(HMACSHA1.hex(key: [UInt8](repeating: 0xAA, count: 80), message: Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8))
            == "aa4ae5e15272d00e95705637ce8a3b55ed402112")
        let abc = HMACSHA1.sha1(Array("abc".utf8)).map { String(format: "%02x", $0) }.joined()
        #expect(abc == "a9993e364706816aba3e25717850c26c9cd0d89d")
    }

    @Test func authorizationHeaderIsSignedLikeTheOfficialClients() {
        // Expected value from Python: hmac.new(b"secret-key", b"20240102T030405Z", sha1).hexdigest()
        let header = RequestHeaders.authorization(
            credentials: Credentials(accessKey: "ak", accessSecret: "secret-key"), dateTime: "20240102T030405Z")
        #expect(header == "MQv2-HMAC-SHA1 Credential=ak, SignedHeaders=x-mq-date-time, Signature=40ebb2cf4446b47dd29ecaf020cb4f683076dd6e")
    }

    @Test func requestHeadersCarryEveryRequiredField() {
        let headers = RequestHeaders(clientId: "c1", namespace: "ns", credentials: nil)
        let metadata = headers.metadata(now: Date(timeIntervalSince1970: 1_704_164_645))  // 2024-01-02T03:04:05Z
        #expect(metadata.first("x-mq-date-time") == "20240102T030405Z")
        #expect(metadata.first("x-mq-client-id") == "c1")
        #expect(metadata.first("x-mq-namespace") == "ns")
        #expect(metadata.first("x-mq-protocol") == "GRPC_V2")
        #expect(metadata.first("x-mq-language") == "SWIFT")
        #expect(metadata.first("authorization")?.hasPrefix("MQv2-HMAC-SHA1 Credential=, ") == true)
        #expect(metadata.first("x-mq-request-id") != headers.metadata().first("x-mq-request-id"))
        // A session's channels send the fixed ones as their default metadata; each call adds its own.
        let fixed = headers.fixedMetadata.map(\.name), perCall = headers.perCallMetadata().map(\.name)
        #expect(Set(fixed + perCall) == Set(metadata.map(\.name)))
        #expect(perCall.sorted() == ["authorization", "x-mq-date-time", "x-mq-request-id"])
    }

    @Test func messageIdsFollowTheRocketMQ5LayoutAndNeverRepeat() throws {
        let ids = (0..<10_000).map { _ in MessageIDGenerator.next() }
        #expect(Set(ids).count == ids.count)
        for id in ids.prefix(100) {
            #expect(id.utf8.count == 34)
            #expect(id.hasPrefix("01"))
            #expect(id.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x41...0x46).contains($0) })
        }
        // Bytes 9-12 are seconds since 2021-01-01T00:00:00Z; the last four a sequence that counts up.
        let first = try #require(ids.first), last = try #require(ids.last)
        let seconds = try #require(UInt32(first.dropFirst(18).prefix(8), radix: 16))
        let now = UInt32(Date().timeIntervalSince1970 - 1_609_459_200)
        #expect(seconds <= now && now - seconds < 60)
        // Other tests running in parallel take ids from the same generator: each id's sequence
        // is above the one before (by at least one), not necessarily by exactly one.
        let sequence = { (id: String) in UInt32(id.suffix(8), radix: 16) ?? 0 }
        #expect(zip(ids, ids.dropFirst()).allSatisfy { (sequence($1) &- sequence($0)) &- 1 < 1_000_000 })
        #expect(sequence(last) &- sequence(first) >= 9_999)
        #expect(first.prefix(18) == last.prefix(18))
    }

    @Test func signatureIsReusedWithinASecondAndRenewedAfter() {
        let headers = RequestHeaders(clientId: "c1", namespace: "", credentials: Credentials(accessKey: "ak", accessSecret: "sk"))
        let t = Date(timeIntervalSince1970: 1_704_164_645.2)
        let a = headers.metadata(now: t), b = headers.metadata(now: t.addingTimeInterval(0.5))
        let c = headers.metadata(now: t.addingTimeInterval(1))
        #expect(a.first("authorization") == b.first("authorization"))
        #expect(c.first("x-mq-date-time") == "20240102T030406Z")
        #expect(c.first("authorization") == RequestHeaders.authorization(
            credentials: Credentials(accessKey: "ak", accessSecret: "sk"), dateTime: "20240102T030406Z"))
        #expect(a.first("x-mq-request-id") != b.first("x-mq-request-id"))
    }

    @Test func endpointsParseSeveralHostsAndRejectGarbage() throws {
        let configuration = try ClientConfiguration(endpoints: "127.0.0.1:9876; broker.local:8081;[::1]:10911")
        #expect(configuration.endpoints == [
            Endpoint(host: "127.0.0.1", port: 9876), Endpoint(host: "broker.local", port: 8081), Endpoint(host: "::1", port: 10911),
        ])
        #expect(throws: RocketMQError.self) { try ClientConfiguration(endpoints: "") }
        #expect(throws: RocketMQError.self) { try ClientConfiguration(endpoints: "localhost") }
        #expect(throws: RocketMQError.self) { try ClientConfiguration(endpoints: "localhost:99999") }
    }

    @Test func tagExpressionsMatchAlternativesAndStar() {
        #expect(FilterExpression.tags("a || b").matches(tag: "a"))
        #expect(FilterExpression.tags("a||b").matches(tag: "b"))
        #expect(!FilterExpression.tags("a || b").matches(tag: "c"))
        #expect(!FilterExpression.tags("a").matches(tag: nil))
        #expect(FilterExpression.all.matches(tag: nil))
    }

    @Test func retryDelaysFollowTheServersLadderThenStayAtItsLastStep() {
        let ladder = Apache_Rocketmq_V2_RetryPolicy(
            maxAttempts: 16, strategy: .customizedBackoff(.init(next: [1, 5, 10].map { Google_Protobuf_Duration(seconds: $0, nanos: 0) })))
        #expect(RetryBackoff.delay(after: 1, policy: ladder) == .seconds(1))
        #expect(RetryBackoff.delay(after: 2, policy: ladder) == .seconds(5))
        #expect(RetryBackoff.delay(after: 9, policy: ladder) == .seconds(10))
        let exponential = Apache_Rocketmq_V2_RetryPolicy(
            maxAttempts: 5,
            strategy: .exponentialBackoff(.init(initial: .init(seconds: 1, nanos: 0), max: .init(seconds: 3, nanos: 0), multiplier: 2)))
        #expect(RetryBackoff.delay(after: 2, policy: exponential) == .seconds(2))
        #expect(RetryBackoff.delay(after: 5, policy: exponential) == .seconds(3))
    }

    @Test func messageGroupHashIsStableAcrossProcesses() {
        // FNV-1a 64 of "abc": fixed, unlike Hasher, so every producer picks the same queue.
        #expect(StableHash.of("abc") == 0xE71F_A219_0541_574B)
        #expect(StableHash.of("") == 0xCBF2_9CE4_8422_2325)
    }

    @Test func gzipRoundTripsAndRejectsCorruptBodies() throws {
        let body = Array(String(repeating: "rocketmq ", count: 1000).utf8)
        let compressed = try Gzip.compress(body)
        #expect(compressed.count < body.count / 10)
        #expect(try Gzip.decompress(compressed) == body)
        #expect(throws: RocketMQError.self) { try Gzip.decompress([1, 2, 3, 4]) }
    }

    @Test func sendErrorsAreSortedByWhetherTheBrokerStoredTheMessage() {
        // Stored, but not flushed or replicated as asked: never sent again.
        for code in [Apache_Rocketmq_V2_Code.haNotAvailable, .masterPersistenceTimeout, .slavePersistenceTimeout] {
            #expect(RocketMQError.status(code: code, message: "").isStoredButUnconfirmed, "\(code)")
            #expect(!RocketMQError.status(code: code, message: "").isRefusedBeforeStoring, "\(code)")
        }
        // Refused before storing: another broker may take it, half messages included.
        for code in [Apache_Rocketmq_V2_Code.tooManyRequests, .topicNotFound, .preconditionFailed] {
            let error = RocketMQError.status(code: code, message: "")
            #expect(error.isRetryable && error.isRefusedBeforeStoring && !error.isStoredButUnconfirmed, "\(code)")
        }
        // Unknown outcome (a deadline): retried for normal messages, not for half messages.
        let deadline = RocketMQError.transport(RPCError(code: .deadlineExceeded, message: ""))
        #expect(deadline.isRetryable && !deadline.isRefusedBeforeStoring && !deadline.isStoredButUnconfirmed)
        #expect(!RocketMQError.status(code: .badRequest, message: "").isRetryable)
    }
}

@Suite("settling a handled message")
struct SettleRetryTests {
    @Test("a settle call that keeps failing in a way that may pass is tried until it goes through")
    func triesPastAHandfulOfFailures() async throws {
        let retry = SettleRetry(limit: .seconds(30), firstPause: .milliseconds(1), longestPause: .milliseconds(2))
        let failures = Counter()
        let attempts = try await retry.run(isStopping: { false }, onRetry: { _, _ in }) { () throws(RocketMQError) in
            if failures.next() <= 20 { throw .transport(RPCError(code: .unavailable, message: "broker down")) }
        }
        #expect(attempts == 21)
    }

    @Test("an error that will not pass, a consumer that stops, or the limit ends the tries")
    func givesUpWhenItShould() async throws {
        let retry = SettleRetry(limit: .seconds(30), firstPause: .milliseconds(1), longestPause: .milliseconds(2))
        let invalid = Counter()
        await #expect(throws: RocketMQError.self) {
            _ = try await retry.run(isStopping: { false }, onRetry: { _, _ in }) { () throws(RocketMQError) in
                _ = invalid.next()
                throw .status(code: .invalidReceiptHandle, message: "gone")
            }
        }
        #expect(invalid.value == 1)
        let stopping = Counter()
        await #expect(throws: RocketMQError.self) {
            _ = try await retry.run(isStopping: { stopping.value >= 3 }, onRetry: { _, _ in }) { () throws(RocketMQError) in
                _ = stopping.next()
                throw .transport(RPCError(code: .unavailable, message: "broker down"))
            }
        }
        #expect(stopping.value == 3)
        let short = SettleRetry(limit: .milliseconds(50), firstPause: .milliseconds(5), longestPause: .milliseconds(5))
        let start = ContinuousClock.now
        await #expect(throws: RocketMQError.self) {
            _ = try await short.run(isStopping: { false }, onRetry: { _, _ in }) { () throws(RocketMQError) in
                throw .transport(RPCError(code: .unavailable, message: "broker down"))
            }
        }
        #expect(ContinuousClock.now - start < .seconds(5))
        #expect(SettleRetry().pause(after: 1) == .milliseconds(100) && SettleRetry().pause(after: 30) == .seconds(2))
    }
}

/// A count shared with `@Sendable` closures.
private final class Counter: Sendable {
    private let count = Mutex(0)
    /// Adds one and returns the new count.
    func next() -> Int { count.withLock { $0 += 1; return $0 } }
    var value: Int { count.withLock { $0 } }
}
