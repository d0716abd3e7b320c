"""Automatic failover through a real etcd (Debian's etcd-server): the members of a broker group
elect their master there. A killed master is replaced by its slave within the lease's TTL; a
master cut off from etcd stops taking writes (fencing) before anyone else can be elected; a former
master that comes back follows the new one. Traffic from the official RocketMQ Python client."""
import time

import grpc
import pytest

from rocketmq.grpc_protocol import definition_pb2 as d, service_pb2 as s, service_pb2_grpc

from test_broker_admin import admin_pb  # noqa: F401 (fixture)
from test_console_cluster import namesrv  # noqa: F401 (fixture)
from test_replication import TOKEN, admin_stub, caught_up, consume, producer, send_one, wait_until
from test_rocketmq_client import message

TOPIC = "failover-orders"
GROUP = "failover-group"
CONFIG = {
    "flushMode": "async",
    "autoCreate": True,
    "failoverTTLSeconds": 3,
    "topics": [{"name": TOPIC, "queueCount": 2, "permission": 6, "messageTypes": ["NORMAL"]}],
    "groups": [{"name": GROUP, "maxDeliveryAttempts": 16, "fifo": False, "consumeEnabled": True}],
}


def member(broker_factory, etcd, namesrv, member_id):
    return broker_factory(CONFIG, extra=["--etcd", etcd.endpoint, "--broker-id", str(member_id), "--admin-token", TOKEN, "-n", namesrv])


def routed_to(namesrv):
    """The (broker id, address) pairs the NameServer's QueryRoute gives clients for TOPIC."""
    with grpc.insecure_channel(namesrv) as channel:
        route = service_pb2_grpc.MessagingServiceStub(channel).QueryRoute(
            s.QueryRouteRequest(topic=d.Resource(name=TOPIC)), metadata=(("x-mq-client-id", "pytest-failover"),), timeout=5)
    return sorted({(q.broker.id, f"{a.host}:{a.port}") for q in route.message_queues for a in q.broker.endpoints.addresses})


def status(pb, stub):
    return stub.GetReplicationStatus(pb.GetReplicationStatusRequest(), timeout=5)


def is_master(pb, stub):
    s = status(pb, stub)
    return s.role == "ASYNC_MASTER" and s.broker_id == 0


def follows(pb, stub, master):
    s = status(pb, stub)
    return s.role == "SLAVE" and s.master_address == master.endpoint and s.connected


def elected_pair(broker_factory, etcd, namesrv, admin_pb):
    """Member 1, elected master, and member 2 following it, each with its admin stub."""
    pb, _ = admin_pb
    first = member(broker_factory, etcd, namesrv, 1)
    first_admin = admin_stub(admin_pb, first)
    wait_until("the first member to be elected", lambda: is_master(pb, first_admin), timeout=20)
    second = member(broker_factory, etcd, namesrv, 2)
    second_admin = admin_stub(admin_pb, second)
    wait_until("the second member to follow it", lambda: follows(pb, second_admin, first), timeout=20)
    return first, first_admin, second, second_admin


def send(endpoint, body):
    send_one(endpoint, body, topic=TOPIC)


def test_the_group_elects_a_new_master_and_fences_one_cut_off_from_etcd(broker_factory, etcd, namesrv, admin_pb):
    pb, _ = admin_pb
    first, first_admin, second, second_admin = elected_pair(broker_factory, etcd, namesrv, admin_pb)
    wait_until("clients to be routed to the master", lambda: routed_to(namesrv) == [(0, first.endpoint)], timeout=20)
    assert "etcd" in status(pb, second_admin).failover
    # Manual promotion is refused: etcd decides.
    with pytest.raises(grpc.RpcError) as refused:
        second_admin.PromoteToMaster(pb.PromoteToMasterRequest(), metadata=((("authorization", f"Bearer {TOKEN}"),)), timeout=5)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    bodies = [f"order-{i}".encode() for i in range(30)]
    p = producer(first.endpoint, TOPIC)
    try:
        for body in bodies:
            p.send(message(TOPIC, body))
    finally:
        p.shutdown()
    acked = consume(first.endpoint, GROUP, TOPIC, 10)
    wait_until("the slave to catch up", caught_up(pb, first_admin, second_admin))

    # The master dies: its lease runs out (3 s) and the slave takes over.
    killed_at = time.monotonic()
    first.kill()
    wait_until("the slave to be elected", lambda: is_master(pb, second_admin), timeout=20)
    assert time.monotonic() - killed_at < 15
    wait_until("clients to be routed to the new master", lambda: routed_to(namesrv) == [(0, second.endpoint)], timeout=20)
    rest = consume(second.endpoint, GROUP, TOPIC, 20, then_nothing=True)
    assert sorted(m.body for m in acked + rest) == sorted(bodies)
    send(second.endpoint, b"to-the-new-master")

    # The former master comes back (same flags) and follows the new one.
    first.start()
    wait_until("the former master to follow", lambda: follows(pb, first_admin, second), timeout=20)
    wait_until("it to catch up", caught_up(pb, second_admin, first_admin))

    # etcd goes away: the master cannot renew its lease and stops taking writes in time.
    etcd.kill()
    fenced_at = time.monotonic()
    wait_until("the master to fence itself", lambda: status(pb, second_admin).role == "SLAVE", timeout=15)
    assert time.monotonic() - fenced_at < 4, "fenced before the 3 s lease could have run out at etcd"
    with pytest.raises(Exception):
        send(second.endpoint, b"while-fenced")

    # etcd returns: the group elects a master again, and the other member follows it.
    etcd.start()
    admins = {first.endpoint: first_admin, second.endpoint: second_admin}
    winner = wait_until("a master again", lambda: next((e for e, a in admins.items() if is_master(pb, a)), None), timeout=30)
    loser = next(a for e, a in admins.items() if e != winner)
    winner_broker = first if winner == first.endpoint else second
    wait_until("the other member to follow it", lambda: follows(pb, loser, winner_broker), timeout=30)
    send(winner, b"after-etcd-returned")


def test_a_former_master_with_records_its_successor_never_got_rejoins_after_a_failover(broker_factory, etcd, namesrv, admin_pb):
    """The slave is down while the master takes sends; then the master dies and the slave, back,
    is elected without them. The former master, back too, follows it: it cuts its log back to the
    last record both share (dropping the sends only it had) and copies the new master's."""
    pb, _ = admin_pb
    first, first_admin, second, second_admin = elected_pair(broker_factory, etcd, namesrv, admin_pb)
    for i in range(3):
        send(first.endpoint, f"both-{i}".encode())
    wait_until("the slave to catch up", caught_up(pb, first_admin, second_admin))
    shared = status(pb, second_admin).commit_log_max_offset
    second.kill()
    for i in range(3):
        send(first.endpoint, f"only-on-the-first-{i}".encode())
    first.kill()
    second.start()
    wait_until("the second member to be elected", lambda: is_master(pb, second_admin), timeout=30)
    send(second.endpoint, b"only-on-the-second-and-longer")

    first.start()
    wait_until("the former master to follow", lambda: follows(pb, first_admin, second), timeout=30)
    wait_until("it to hold the new master's log", caught_up(pb, second_admin, first_admin))
    output = first.process.output()
    assert "cut back to the last record both share" in output and f"to={shared}" in output, output[-3000:]


def test_the_member_with_the_most_of_the_log_takes_over(broker_factory, etcd, namesrv, admin_pb):
    """Member 1 was down while the master took more sends; member 2 kept up. When the master dies,
    member 2 is elected even though member 1 has the lower id, and member 1 then follows it."""
    pb, _ = admin_pb
    master = member(broker_factory, etcd, namesrv, 3)
    master_admin = admin_stub(admin_pb, master)
    wait_until("member 3 to be elected", lambda: is_master(pb, master_admin), timeout=20)
    lagging, current = member(broker_factory, etcd, namesrv, 1), member(broker_factory, etcd, namesrv, 2)
    lagging_admin, current_admin = admin_stub(admin_pb, lagging), admin_stub(admin_pb, current)
    for admin in (lagging_admin, current_admin):
        wait_until("the members to follow", lambda: follows(pb, admin, master), timeout=20)
    send(master.endpoint, b"everyone-has-this")
    wait_until("member 1 to catch up", caught_up_one(pb, master_admin, lagging_admin))
    lagging.kill()
    bodies = [f"only-member-2-{i}".encode() for i in range(5)]
    for body in bodies:
        send(master.endpoint, body)
    wait_until("member 2 to catch up", caught_up_one(pb, master_admin, current_admin))
    master.kill()
    lagging.start()
    wait_until("member 2 to be elected", lambda: is_master(pb, current_admin), timeout=30)
    assert not is_master(pb, lagging_admin)
    wait_until("member 1 to follow member 2", lambda: follows(pb, lagging_admin, current), timeout=30)
    got = consume(current.endpoint, GROUP, TOPIC, 6, then_nothing=True)
    assert sorted(m.body for m in got) == sorted(bodies + [b"everyone-has-this"])


def caught_up_one(pb, master, slave):
    """`slave` holds all of `master`'s log (other slaves may follow too)."""
    def check():
        m = master.GetReplicationStatus(pb.GetReplicationStatusRequest(), timeout=5)
        s = slave.GetReplicationStatus(pb.GetReplicationStatusRequest(), timeout=5)
        return s.connected and s.commit_log_max_offset == m.commit_log_max_offset
    return check
