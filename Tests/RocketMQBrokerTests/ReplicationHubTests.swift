import Synchronization
import Testing
@testable import RocketMQBroker

/// A sync master's waits: answered by a covering acknowledgement, refused without a slave,
/// failed after the timeout.
@Suite struct ReplicationHubTests {
    private final class Outcomes: Sendable {
        private let list = Mutex<[String]>([])
        func add(_ error: BrokerError?) { list.withLock { $0.append(error.map { "\($0.status.code)" } ?? "ok") } }
        var all: [String] { list.withLock { $0 } }
    }

    @Test func aSendWaitsForAnAcknowledgementThatCoversIt() async throws {
        let hub = ReplicationHub()
        let outcomes = Outcomes()
        hub.whenReplicated(upTo: 100, timeout: .seconds(5)) { outcomes.add($0) }
        #expect(outcomes.all == ["haNotAvailable"], "no slave follows")

        let (id, _) = hub.attach(address: "127.0.0.1:1", brokerId: 1, offset: 50)
        hub.whenReplicated(upTo: 40, timeout: .seconds(5)) { outcomes.add($0) }
        #expect(outcomes.all.count == 2, "already covered: answered at once")
        hub.whenReplicated(upTo: 100, timeout: .seconds(5)) { outcomes.add($0) }
        hub.whenReplicated(upTo: 200, timeout: .seconds(5)) { outcomes.add($0) }
        hub.acknowledge(id, offset: 99)
        #expect(outcomes.all.count == 2)
        hub.acknowledge(id, offset: 150)
        #expect(outcomes.all == ["haNotAvailable", "ok", "ok"])
        hub.acknowledge(id, offset: 120)  // an older acknowledgement moves nothing back
        #expect(hub.replicas.map(\.acknowledged) == [150])
        hub.acknowledge(id, offset: 200)
        #expect(outcomes.all == ["haNotAvailable", "ok", "ok", "ok"])
        hub.detach(id)
        #expect(hub.replicas.isEmpty)
    }

    @Test func aSendTimesOutWhenTheSlaveFallsSilent() async throws {
        let hub = ReplicationHub()
        let (id, _) = hub.attach(address: "127.0.0.1:1", brokerId: 1, offset: 0)
        defer { hub.detach(id) }
        await confirmation { answered in
            do throws(BrokerError) {
                try await hub.waitForReplica(upTo: 10, timeout: .milliseconds(100))
                Issue.record("no acknowledgement came, yet the wait succeeded")
            } catch {
                #expect(error == .replicationTimeout)
                #expect(error.status.code == .slavePersistenceTimeout)
                answered()
            }
        }
    }

    @Test func theDoorbellRingsOnlyWhileASlaveFollows() async throws {
        let hub = ReplicationHub()
        hub.logGrew()  // nobody follows: nothing to ring
        let (id, doorbell) = hub.attach(address: "127.0.0.1:1", brokerId: 1, offset: 0)
        hub.logGrew()
        hub.logGrew()
        var rings = doorbell.makeAsyncIterator()
        #expect(await rings.next() != nil, "growth wakes the slave's stream (coalesced)")
        hub.detach(id)
        #expect(await rings.next() == nil, "detaching ends the stream's wait")
    }
}
