import RocketMQAPI
@testable import RocketMQNameServer
import RocketRPC
import Testing

/// A former master that comes back after its slave was promoted must not take the routes back.
@Suite("RouteTable: master epochs")
struct MasterEpochTests {
    let former = ["127.0.0.1:10911"]
    let promoted = ["127.0.0.1:10921"]

    @Test("a promoted master replaces its former master, whose later registration is refused while it lives")
    func aLowerEpochMasterIsRefusedWhileAHigherOneLives() throws {
        let table = RouteTable(brokerExpiry: .seconds(30))
        let start = ContinuousClock.now
        let old = try table.register(registration(endpoints: former), now: start)
        try table.register(registration(endpoints: promoted, masterEpoch: 1_700_000_000_000), now: start)
        #expect(table.brokers(now: start).map(\.registration.endpoints) == [promoted])
        // The former master's heartbeat finds its registration gone; registering again is refused.
        #expect(try table.heartbeat(old, now: start) == false)
        let refused = NameServerError.supersededMaster(
            BrokerKey(brokerName: "broker-a", brokerId: 0), epoch: 0, liveMaster: promoted, liveEpoch: 1_700_000_000_000)
        #expect(throws: refused) { try table.register(registration(endpoints: former), now: start + .seconds(1)) }
        #expect(refused.rpcError.code == .failedPrecondition)
        #expect(table.brokers(now: start).map(\.registration.endpoints) == [promoted])
        // A lower epoch than the live one is refused as well, not only a master never promoted.
        #expect(throws: NameServerError.self) {
            try table.register(registration(endpoints: former, masterEpoch: 1_699_999_999_999), now: start + .seconds(1))
        }
        // Once the promoted master is gone (expired here), the former one is the only master left.
        try table.register(registration(endpoints: former), now: start + .seconds(31))
        #expect(table.brokers(now: start + .seconds(31)).map(\.registration.endpoints) == [former])
    }

    @Test("a master re-registering at its own endpoints, masters of equal epochs and slaves are never refused")
    func onlyALowerEpochElsewhereIsRefused() throws {
        let table = RouteTable()
        try table.register(registration(endpoints: promoted, masterEpoch: 5))
        // The same broker again (a reconnect), whatever epoch it sends.
        try table.register(registration(endpoints: promoted, masterEpoch: 5))
        try table.register(registration(endpoints: promoted))
        // Two masters never promoted: the later registration replaces the earlier, as before epochs.
        try table.register(registration(endpoints: former))
        #expect(table.brokers().map(\.registration.endpoints) == [former])
        // Slaves carry no epoch and are keyed by their own id.
        try table.register(registration(id: 1, endpoints: ["127.0.0.1:10931"]))
        #expect(table.brokers().count == 2)
    }

    @Test("a negative epoch is an invalid registration")
    func aNegativeEpochIsInvalid() {
        #expect(throws: NameServerError.self) { try RouteTable().register(registration(masterEpoch: -1)) }
    }
}

extension MasterEpochTests {
    @Test func aMasterReplacedByAHigherEpochIsToldAndOthersAreNot() throws {
        let table = RouteTable()
        let told = Collected<NameServerError>()
        try table.register(registration(endpoints: former), onSuperseded: { told.append($0) })
        // The same broker again (a restart at the same endpoints): no supersession.
        try table.register(registration(endpoints: former), onSuperseded: { told.append($0) })
        #expect(told.values.isEmpty)
        try table.register(registration(endpoints: promoted, masterEpoch: 9))
        #expect(told.values.count == 1)
        if case .supersededMaster(_, let epoch, let live, let liveEpoch)? = told.values.first {
            #expect(epoch == 0 && live == promoted && liveEpoch == 9)
        } else {
            Issue.record("expected supersededMaster, got \(told.values)")
        }
    }
}
