import Foundation
@testable import RocketMQBroker
import Synchronization
import Testing

/// An atomic a test's tasks share.
private final class Shared: Sendable {
    let value: Atomic<Int>
    init(_ initial: Int) { value = Atomic(initial) }
}

/// A master that registers with NameServers takes no write until they answered its registration.
@Suite struct WriteHoldTests {
    /// The reason a refused write gives, or nil when it was stored.
    func refusal(_ broker: Broker, body: String) async -> String? {
        do {
            try await send(broker, topic: "T", body: body)
            return nil
        } catch let error as BrokerError {
            return error.description
        } catch {
            return "\(error)"
        }
    }

    @Test func aHeldMasterRefusesWritesUntilTheNameServersAcceptItThenTakesThem() async throws {
        try await withBroker { broker in
            #expect(broker.holdWritesUntilRegistered())
            #expect(broker.isHoldingWrites && !broker.isSlave)
            #expect(broker.replicationStatus.writesRefused.hasPrefix("holding writes until a NameServer accepts it as master (at most"))
            let refused = await refusal(broker, body: "too early")
            #expect(refused?.contains("is starting: it takes writes once a NameServer has accepted it") == true)

            // Two NameServers: one accepts at once, the other a little later.
            let accepted = Atomic<Int>(1)
            async let verdict: Void = broker.awaitRegistrationVerdict(nameServers: 2, accepted: { accepted.load(ordering: .relaxed) }, grace: .seconds(30))
            try await Task.sleep(for: .milliseconds(50))
            #expect(broker.isHoldingWrites, "one of two accepted: the grace for the other is not over")
            accepted.store(2, ordering: .relaxed)
            await verdict
            #expect(!broker.isHoldingWrites && broker.replicationStatus.writesRefused.isEmpty)
            #expect(await refusal(broker, body: "accepted") == nil)
            #expect(broker.store.maxOffset(topic: "T", queueId: 0) == 1, "the refused write left nothing")
        }
    }

    @Test func aSendWaitingOnTheHoldGoesOnOnceItOpens() async throws {
        try await withBroker { broker in
            broker.holdWritesUntilRegistered()
            let finished = Shared(0)
            let waiter = Task {
                try await broker.waitForWriteHold()
                finished.value.store(1, ordering: .sequentiallyConsistent)
            }
            try await Task.sleep(for: .milliseconds(100))
            #expect(finished.value.load(ordering: .sequentiallyConsistent) == 0, "the wait returned while writes were held")
            broker.releaseWrites("a test")
            try await waiter.value
            #expect(finished.value.load(ordering: .sequentiallyConsistent) == 1)
            #expect(await refusal(broker, body: "after the wait") == nil)
        }
    }

    @Test func theHoldEndsByItsDeadlineEvenWhenTheFirstAcceptanceComesLate() async throws {
        try await withBroker({ $0.registrationHold = .milliseconds(300) }) { broker in
            broker.holdWritesUntilRegistered()
            let clock = ContinuousClock()
            let start = clock.now
            // A waiting call, from the start: it must not give up before the hold ends.
            let waiter = Task { try await broker.waitForWriteHold() }
            // One of two NameServers accepts 250 ms in; its 2 s grace would run past the deadline.
            let accepted = Shared(0)
            Task {
                try await Task.sleep(for: .milliseconds(250))
                accepted.value.store(1, ordering: .relaxed)
            }
            await broker.awaitRegistrationVerdict(nameServers: 2, accepted: { accepted.value.load(ordering: .relaxed) })
            let ended = clock.now - start
            #expect(ended >= .milliseconds(290) && ended < .seconds(2), "ended after \(ended)")
            try await waiter.value  // did not throw: the hold was over when it returned
            #expect(await refusal(broker, body: "after the deadline") == nil)
        }
    }

    @Test func aCallStillHeldWhenItsWaitEndsChangesNothing() async throws {
        try await withBroker({ $0.registrationHold = .milliseconds(100) }) { broker in
            broker.holdWritesUntilRegistered()
            // Nothing ends the hold (no verdict runs): the wait gives up past the deadline.
            await #expect(throws: BrokerError.self) { try await broker.waitForWriteHold() }
            #expect(broker.isHoldingWrites)
        }
    }

    @Test func aRefusalDuringTheHoldKeepsTheMasterFencedAndEndsTheWaits() async throws {
        try await withBroker { broker in
            broker.holdWritesUntilRegistered()
            async let waited: Void = broker.waitForWriteHold()
            try await Task.sleep(for: .milliseconds(50))
            broker.supersededAsMaster("a test: broker-a's master at 127.0.0.1:2 has the higher epoch 9")
            try await waited  // the hold ended (closed): the wait does not throw, the write does
            #expect(!broker.isHoldingWrites && broker.isSlave)
            // A verdict arriving late (another NameServer accepted) must not open the store.
            broker.releaseWrites("a late acceptance")
            await broker.awaitRegistrationVerdict(nameServers: 1, accepted: { 1 })
            let refused = await refusal(broker, body: "never")
            #expect(refused?.contains("superseded as master") == true)
            let status = broker.replicationStatus
            #expect(status.role == .asyncMaster && status.writesRefused.hasPrefix("superseded as master by a promoted one"))
            #expect(broker.store.maxOffset(topic: "T", queueId: 0) == 0)
        }
    }

    @Test func withNoNameServerAnsweringTheHoldEndsAfterItsLimit() async throws {
        try await withBroker({ $0.registrationHold = .milliseconds(300) }) { broker in
            broker.holdWritesUntilRegistered()
            let clock = ContinuousClock()
            let start = clock.now
            await broker.awaitRegistrationVerdict(nameServers: 2, accepted: { 0 })
            #expect(clock.now - start >= .milliseconds(300))
            #expect(!broker.isHoldingWrites)
            #expect(await refusal(broker, body: "unreachable NameServers") == nil)
        }
    }

    @Test func oneAcceptanceOpensAfterTheGraceWhenTheOtherNameServersStaySilent() async throws {
        try await withBroker { broker in
            broker.holdWritesUntilRegistered()
            let clock = ContinuousClock()
            let start = clock.now
            await broker.awaitRegistrationVerdict(nameServers: 3, accepted: { 1 }, grace: .milliseconds(200))
            let elapsed = clock.now - start
            #expect(elapsed >= .milliseconds(200) && elapsed < .seconds(5))
            #expect(await refusal(broker, body: "one of three") == nil)
        }
    }

    @Test func slavesAndAZeroHoldDoNotHold() async throws {
        try await withBroker({ $0.registrationHold = .zero }) { broker in
            #expect(!broker.holdWritesUntilRegistered())
            #expect(await refusal(broker, body: "no hold") == nil)
        }
        try await withBroker({
            $0.role = .slave
            $0.brokerId = 1
            $0.masterAddress = "127.0.0.1:1"
        }) { broker in
            #expect(!broker.holdWritesUntilRegistered())
            #expect(!broker.isHoldingWrites)
        }
    }
}
