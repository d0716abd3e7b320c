@testable import RocketMQBroker
import Synchronization
import Testing

/// Names of the waiters a signal woke.
private final class Woken: Sendable {
    private let names = Mutex<[String]>([])
    func add(_ name: String) { names.withLock { $0.append(name) } }
    var sorted: [String] { names.withLock { $0.sorted() } }
}

@Suite("Long-poll wake-ups")
struct ArrivalSignalTests {
    /// Starts a waiter and returns once it is registered.
    private func startWaiter(
        _ signal: ArrivalSignal, topic: String, _ interest: ArrivalSignal.Interest, woken: Woken, name: String
    ) async throws -> Task<Bool, Never> {
        let before = signal.waiterCount(topic)
        let epoch = signal.beginPoll(topic, as: interest)
        let task = Task {
            defer { signal.endPoll() }
            let result = await signal.wait(for: topic, as: interest, since: epoch, timeout: .seconds(30))
            if result { woken.add(name) }
            return result
        }
        try await until { signal.waiterCount(topic) == before + 1 }
        return task
    }

    private func until(_ condition: () -> Bool) async throws {
        for _ in 0..<500 where !condition() { try await Task.sleep(for: .milliseconds(2)) }
        #expect(condition())
    }

    @Test("an arrival wakes the longest-waiting pop receiver of each group, not every receiver")
    func wakesOnePerGroup() async throws {
        let signal = ArrivalSignal()
        let woken = Woken()
        let a1 = try await startWaiter(signal, topic: "t", .group("A"), woken: woken, name: "a1")
        let a2 = try await startWaiter(signal, topic: "t", .group("A"), woken: woken, name: "a2")
        let b1 = try await startWaiter(signal, topic: "t", .group("B"), woken: woken, name: "b1")
        signal.signal("t", queueId: 3)
        let (a1Woken, b1Woken) = (await a1.value, await b1.value)
        #expect(a1Woken && b1Woken)
        try await until { signal.waiterCount("t") == 1 }
        #expect(woken.sorted == ["a1", "b1"])
        // a1 begins its next scan (as a woken receiver does), so the next arrival wakes a2.
        _ = signal.beginPoll("t", as: .group("A"))
        signal.endPoll()
        signal.signal("t", queueId: 0)
        #expect(await a2.value)
        #expect(signal.waiterCount("t") == 0)
    }

    @Test("arrivals coalesce into the scan of a woken receiver that has not begun it")
    func arrivalsCoalesce() async throws {
        let signal = ArrivalSignal(coalesceWindow: .seconds(60))  // never runs out here
        let woken = Woken()
        let a1 = try await startWaiter(signal, topic: "t", .group("A"), woken: woken, name: "a1")
        let a2 = try await startWaiter(signal, topic: "t", .group("A"), woken: woken, name: "a2")
        let q = try await startWaiter(signal, topic: "t", .queue(1), woken: woken, name: "q")
        signal.signal("t", queueId: 0)
        // a1 has not begun its scan, which will see this arrival too: a2 sleeps on. A pull
        // receiver of the queue still wakes.
        signal.signal("t", queueId: 1)
        #expect(await a1.value)
        #expect(await q.value)
        #expect(signal.waiterCount("t") == 1)
        // Once a1 scans, arrivals after its scan began wake a2.
        _ = signal.beginPoll("t", as: .group("A"))
        signal.endPoll()
        signal.signal("t", queueId: 0)
        #expect(await a2.value)
        #expect(woken.sorted == ["a1", "a2", "q"])
    }

    @Test("a woken receiver that never scans holds the others back for the coalescing window only")
    func coalescingWindowEnds() async throws {
        let window = Duration.milliseconds(200)
        let signal = ArrivalSignal(coalesceWindow: window)
        let woken = Woken()
        let a1 = try await startWaiter(signal, topic: "t", .group("A"), woken: woken, name: "a1")
        let a2 = try await startWaiter(signal, topic: "t", .group("A"), woken: woken, name: "a2")
        let clock = ContinuousClock()
        let start = clock.now
        signal.signal("t")
        signal.signal("t")
        if clock.now - start < window { #expect(signal.waiterCount("t") == 1) }
        #expect(await a1.value)
        try await Task.sleep(for: window * 2)
        signal.signal("t")
        #expect(await a2.value)
        #expect(signal.waiterCount("t") == 0)
    }

    @Test("a full batch hands on to the group's next waiting receiver, and only to it")
    func handOnWakesTheNextReceiver() async throws {
        let signal = ArrivalSignal(coalesceWindow: .seconds(60))
        let woken = Woken()
        let a1 = try await startWaiter(signal, topic: "t", .group("A"), woken: woken, name: "a1")
        let a2 = try await startWaiter(signal, topic: "t", .group("A"), woken: woken, name: "a2")
        let b1 = try await startWaiter(signal, topic: "t", .group("B"), woken: woken, name: "b1")
        let q = try await startWaiter(signal, topic: "t", .queue(0), woken: woken, name: "q")
        // A receiver of A (not one of the waiters) began its scan and filled its batch.
        _ = signal.beginPoll("t", as: .group("A"))
        signal.handOn("t", group: "A")
        signal.endPoll()
        // A second hand-on while a1 has not begun its scan is covered by that scan.
        signal.handOn("t", group: "A")
        #expect(signal.waiterCount("t") == 3)
        #expect(await a1.value)
        _ = signal.beginPoll("t", as: .group("A"))
        signal.endPoll()
        signal.handOn("t", group: "A")
        #expect(await a2.value)
        // Other groups and pull receivers slept through the hand-ons.
        #expect(signal.waiterCount("t") == 2)
        #expect(woken.sorted == ["a1", "a2"])
        signal.signal("t")
        #expect(await b1.value)
        #expect(await q.value)
    }

    @Test("an arrival between a receiver's scan and its wait is not missed")
    func noLostWakeUp() async {
        let signal = ArrivalSignal()
        // Nobody polls: a signal is a no-op (no epoch to bump, nobody to miss it).
        signal.signal("t", queueId: 0)
        let epoch = signal.beginPoll("t", as: .group("g"))
        defer { signal.endPoll() }
        signal.signal("t", queueId: 0)  // arrives after the scan, before the wait
        let clock = ContinuousClock()
        let started = clock.now
        #expect(await signal.wait(for: "t", as: .group("g"), since: epoch, timeout: .seconds(30)))
        #expect(clock.now - started < .seconds(5))
        #expect(signal.waiterCount("t") == 0)
    }

    @Test("a wait ends false at its timeout or when its task is cancelled, and leaves no waiter behind")
    func timeoutAndCancel() async throws {
        let signal = ArrivalSignal()
        // Timeouts end waits no earlier than asked, also after the sweeper went idle and restarted.
        let clock = ContinuousClock()
        for timeout in [Duration.milliseconds(20), .milliseconds(35)] {
            let started = clock.now
            let epoch = signal.beginPoll("t", as: .group("g"))
            #expect(await signal.wait(for: "t", as: .group("g"), since: epoch, timeout: timeout) == false)
            signal.endPoll()
            #expect(clock.now - started >= timeout)
            #expect(signal.waiterCount("t") == 0)
            try await Task.sleep(for: ArrivalSignal.sweepInterval * 3)
        }
        // Waits with different timeouts on different topics each end at their own.
        let (epochA, epochB) = (signal.beginPoll("a", as: .queue(0)), signal.beginPoll("b", as: .group("g")))
        defer { signal.endPoll(); signal.endPoll() }
        async let short = signal.wait(for: "a", as: .queue(0), since: epochA, timeout: .milliseconds(30))
        async let long = signal.wait(for: "b", as: .group("g"), since: epochB, timeout: .seconds(30))
        #expect(await short == false)
        try await Task.sleep(for: .milliseconds(50))
        #expect(signal.waiterCount("b") == 1)
        signal.signal("b")
        #expect(await long == true)
        let woken = Woken()
        let waiter = try await startWaiter(signal, topic: "t", .group("g"), woken: woken, name: "w")
        waiter.cancel()
        #expect(await waiter.value == false)
        #expect(signal.waiterCount("t") == 0)
    }
}
