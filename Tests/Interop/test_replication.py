"""Master/slave replication between real mqbroker processes, driven by peers nobody here wrote:
the official RocketMQ Python client sends and consumes, grpcio stubs of our admin.proto watch and
promote. A slave copies the master's log, consumer progress included; after the master is killed
and the slave promoted, consumers carry on where they stopped."""
import os
import subprocess
import time
import urllib.request
import uuid

import grpc
import pytest
from rocketmq import ClientConfiguration, Credentials, FilterExpression, Producer, SimpleConsumer
from rocketmq.grpc_protocol import definition_pb2 as d, service_pb2 as s, service_pb2_grpc

from conftest import Broker, binary, Process
from test_broker_admin import admin_pb  # noqa: F401 (fixture)
from test_rocketmq_client import message, receive_exactly

TOKEN = "replication-token"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
TOPIC = "ha-orders"
GROUP = "ha-group"
DELAY_TOPIC = "ha-delayed"
MASTER_CONFIG = {
    "flushMode": "sync",
    "autoCreate": True,
    "topics": [{"name": TOPIC, "queueCount": 2, "permission": 6, "messageTypes": ["NORMAL"]},
               {"name": DELAY_TOPIC, "queueCount": 2, "permission": 6, "messageTypes": ["DELAY"]}],
    "groups": [{"name": GROUP, "maxDeliveryAttempts": 16, "fifo": False, "consumeEnabled": True}],
}


def admin_stub(admin_pb, broker):
    _, pb_grpc = admin_pb
    return pb_grpc.AdminStub(grpc.insecure_channel(broker.endpoint))


def wait_until(what, predicate, timeout=30):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def caught_up(pb, master, slave):
    """The slave is connected and holds exactly the master's log."""
    def check():
        m = master.GetReplicationStatus(pb.GetReplicationStatusRequest(), timeout=5)
        s = slave.GetReplicationStatus(pb.GetReplicationStatusRequest(), timeout=5)
        return (s.connected and s.commit_log_max_offset == m.commit_log_max_offset
                and len(m.replicas) == 1 and m.replicas[0].acknowledged_offset == m.commit_log_max_offset)
    return check


def consume(endpoint, group, topic, count, then_nothing=False):
    """Receives and acks exactly `count` messages of `topic` as `group` on one broker; with
    `then_nothing`, checks that nothing else is delivered."""
    consumer = SimpleConsumer(ClientConfiguration(endpoint, Credentials(), request_timeout=10), group,
                              {topic: FilterExpression("*")}, await_duration=2)
    consumer.startup()
    try:
        got = receive_exactly(consumer, count)
        if then_nothing:
            assert not consumer.receive(32, 20), "nothing beyond these is delivered"
        return got
    finally:
        consumer.shutdown()


def producer(endpoint, topic):
    p = Producer(ClientConfiguration(endpoint, Credentials(), request_timeout=10), (topic,))
    p.startup()
    return p


def async_master_and_slave(broker_factory, admin_pb):
    """An async-flush master (auto-creating topics) and its slave, with their admin stubs."""
    config = {"flushMode": "async", "autoCreate": True}
    master = broker_factory(config, extra=["--admin-token", TOKEN])
    slave = broker_factory(config, extra=["--role", "SLAVE", "--master", master.endpoint, "--admin-token", TOKEN])
    return master, slave, admin_stub(admin_pb, master), admin_stub(admin_pb, slave)


def test_a_slave_copies_its_master_and_takes_over_after_promotion(broker_factory, admin_pb):
    pb, _ = admin_pb
    master = broker_factory(MASTER_CONFIG, extra=["--admin-token", TOKEN])
    slave = broker_factory({"flushMode": "async"}, extra=["--role", "SLAVE", "--master", master.endpoint, "--admin-token", TOKEN,
                                                          "--console-port", "0"])
    master_admin, slave_admin = admin_stub(admin_pb, master), admin_stub(admin_pb, slave)

    keys = [f"order-{i}-{uuid.uuid4().hex[:6]}" for i in range(40)]
    p = producer(master.endpoint, TOPIC)
    try:
        for key in keys:
            p.send(message(TOPIC, key.encode(), tag="ha", keys=[key]))
    finally:
        p.shutdown()
    acked = consume(master.endpoint, GROUP, TOPIC, 15)
    assert len(acked) == 15
    acked_keys = {m.body.decode() for m in acked}

    wait_until("the slave to catch up", caught_up(pb, master_admin, slave_admin))
    # Topics and groups come over with the metadata copy (every 2 s).
    wait_until("the master's topics on the slave",
               lambda: TOPIC in [t.name for t in slave_admin.ListTopics(pb.ListTopicsRequest(), timeout=5).topics])
    found = slave_admin.QueryMessage(pb.QueryMessageRequest(key=keys[7], topic=TOPIC, max_count=4), timeout=5).messages
    assert [m.body for m in found] == [keys[7].encode()]
    status = slave_admin.GetReplicationStatus(pb.GetReplicationStatusRequest(), timeout=5)
    assert (status.role, status.broker_id, status.master_address, status.lag_bytes) == ("SLAVE", 1, master.endpoint, 0)
    assert status.writes_refused == "" and master_admin.GetReplicationStatus(pb.GetReplicationStatusRequest(), timeout=5).writes_refused == ""
    # The slave's console says whom it follows.
    console = slave.process.wait_for(r"console listening on http://127\.0\.0\.1:(\d+)/").group(1)
    with urllib.request.urlopen(f"http://127.0.0.1:{console}/", timeout=10) as page:
        html = page.read().decode()
    assert "<td>Role</td><td>SLAVE</td>" in html and master.endpoint in html and "following" in html
    # The group's progress reads the same on the slave (journal replicated, reloaded with the metadata).
    def progress(stub):
        queues = stub.GetConsumerProgress(pb.GetConsumerProgressRequest(group=GROUP, topic=TOPIC), timeout=5).queues
        return sorted((q.queue_id, q.consumer_offset, q.broker_offset) for q in queues)
    expected = progress(master_admin)
    assert sum(offset for _, offset, _ in expected) > 0
    wait_until("the group's progress on the slave", lambda: progress(slave_admin) == expected)

    # The slave takes no writes: neither a send nor an admin change.
    slave_channel = grpc.insecure_channel(slave.endpoint)
    with pytest.raises(Exception):
        send_one(slave.endpoint, b"to-the-slave")
    with pytest.raises(grpc.RpcError) as refused:
        slave_admin.UpsertTopic(pb.UpsertTopicRequest(topic=pb.Topic(name="made-on-slave", queue_count=1)), metadata=AUTH, timeout=5)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    # Promotion needs the admin token.
    with pytest.raises(grpc.RpcError) as unauthenticated:
        slave_admin.PromoteToMaster(pb.PromoteToMasterRequest(), timeout=5)
    assert unauthenticated.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # While the master still answers, promotion is refused: two masters would take writes.
    with pytest.raises(grpc.RpcError) as alive:
        slave_admin.PromoteToMaster(pb.PromoteToMasterRequest(), metadata=AUTH, timeout=10)
    assert alive.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "still answers" in alive.value.details()
    assert slave_admin.GetReplicationStatus(pb.GetReplicationStatusRequest(), timeout=5).role == "SLAVE"
    slave_channel.close()

    # The master dies; the slave is promoted and serves the group from where it stopped.
    master.kill()
    wait_until("the slave to notice", lambda: not slave_admin.GetReplicationStatus(pb.GetReplicationStatusRequest(), timeout=5).connected)
    promoted = slave_admin.PromoteToMaster(pb.PromoteToMasterRequest(), metadata=AUTH, timeout=30)
    assert (promoted.role, promoted.broker_id) == ("ASYNC_MASTER", 0)
    with pytest.raises(grpc.RpcError) as again:
        slave_admin.PromoteToMaster(pb.PromoteToMasterRequest(), metadata=AUTH, timeout=5)
    assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    # (the 15 acked on the master are not delivered again)
    rest = consume(slave.endpoint, GROUP, TOPIC, 25, then_nothing=True)
    assert {m.body.decode() for m in rest} == set(keys) - acked_keys

    # It takes sends now, and stays the master across a restart with the same (slave) flags.
    send_one(slave.endpoint, b"after-promotion")
    slave.stop()
    slave.start()
    status = slave_admin.GetReplicationStatus(pb.GetReplicationStatusRequest(), timeout=5)
    assert (status.role, status.broker_id) == ("ASYNC_MASTER", 0)
    send_one(slave.endpoint, b"after-restart")


def test_a_deleted_topics_messages_stay_gone_on_master_and_slave(broker_factory, admin_pb):
    """DeleteTopic closes the topic's queues at their end (their floor) before the config goes,
    and the slave takes the floors with the metadata copy: a topic created again under the name
    starts empty on both, its offsets going on from the old end."""
    pb, _ = admin_pb
    master, slave, master_admin, slave_admin = async_master_and_slave(broker_factory, admin_pb)
    channel = grpc.insecure_channel(master.endpoint)
    topic = "to-delete"
    config = pb.Topic(name=topic, queue_count=1, permission=6, message_types=["NORMAL"])
    master_admin.UpsertTopic(pb.UpsertTopicRequest(topic=config), metadata=AUTH, timeout=5)
    for i in range(5):
        raw_send(channel, f"old-{i}".encode(), topic=topic)
    master_admin.DeleteTopic(pb.DeleteTopicRequest(topic=topic), metadata=AUTH, timeout=10)
    master_admin.UpsertTopic(pb.UpsertTopicRequest(topic=config), metadata=AUTH, timeout=5)
    raw_send(channel, b"new", topic=topic)

    def queue(stub):
        try:
            q = stub.DescribeTopic(pb.DescribeTopicRequest(topic=topic), timeout=5).queues[0]
        except grpc.RpcError:
            return None  # the slave has not the topic's config yet
        return (q.min_offset, q.max_offset)
    assert queue(master_admin) == (5, 6)
    wait_until("the slave to catch up", caught_up(pb, master_admin, slave_admin))
    wait_until("the master's floors on the slave", lambda: queue(slave_admin) == (5, 6))
    got = consume(master.endpoint, "after-delete", topic, 1, then_nothing=True)
    assert [m.body for m in got] == [b"new"]


def fill(endpoint, count, topic=TOPIC):
    """Sends `count` 1 KiB messages to `topic`: a few small segments' worth."""
    p = producer(endpoint, topic)
    try:
        for i in range(count):
            p.send(message(topic, b"f" * 1024))
    finally:
        p.shutdown()


def test_a_promoted_slave_delivers_the_masters_pending_delay_messages_kept_past_retention_and_keeps_its_recalls(broker_factory, admin_pb):
    pb, _ = admin_pb
    small = ["--segment-size", str(64 << 10)]  # after the fixture's own: the last one counts
    master = broker_factory(MASTER_CONFIG, extra=["--admin-token", TOKEN, *small])
    slave = broker_factory({"flushMode": "async"}, extra=["--role", "SLAVE", "--master", master.endpoint, "--admin-token", TOKEN, *small])
    master_admin, slave_admin = admin_stub(admin_pb, master), admin_stub(admin_pb, slave)
    due = int(time.time()) + 40  # seconds (the Python client's unit); room for catch-up, retention, kill, promotion
    fill(master.endpoint, 100)
    p = producer(master.endpoint, DELAY_TOPIC)
    try:
        receipts = {}
        for body in (b"later-0", b"later-1", b"recalled"):
            m = message(DELAY_TOPIC, body)
            m.delivery_timestamp = due
            receipts[body] = p.send(m)
        p.recall_message(DELAY_TOPIC, receipts[b"recalled"].recall_handle)
    finally:
        p.shutdown()
    fill(master.endpoint, 150)
    assert master_admin.GetBrokerStatus(pb.GetBrokerStatusRequest(), timeout=5).pending_delay_messages == 2
    wait_until("the slave to catch up", caught_up(pb, master_admin, slave_admin))

    # The slave's retention keeps the segments from the pending ones on, however old they are
    # (its delay mark comes from the master), and deletes those before them.
    wait_until("the master's delay mark on the slave", lambda: os.path.exists(os.path.join(slave.data_dir, "config", "delays.json")))
    segments = sorted(os.listdir(os.path.join(slave.data_dir, "commitlog")))
    assert len(segments) >= 5, segments
    old = time.time() - 80 * 3600
    for name in segments[:-1]:
        os.utime(os.path.join(slave.data_dir, "commitlog", name), (old, old))
    slave_admin.UpdateBrokerConfig(pb.UpdateBrokerConfigRequest(values={"deleteWhenHour": str(time.gmtime().tm_hour)}), metadata=AUTH, timeout=5)
    kept = slave.process.wait_for(r"from=(\d+) neededOffset=(\d+) \S+ keeping expired CommitLog segments", timeout=20)
    kept_from, needed = int(kept.group(1)), int(kept.group(2))
    assert 0 < kept_from <= needed < kept_from + (64 << 10), (kept_from, needed)
    slave.process.wait_for(r"deleted expired CommitLog segment", timeout=5)
    left = sorted(os.listdir(os.path.join(slave.data_dir, "commitlog")))
    assert int(left[0]) == kept_from and len(left) == len(segments) - segments.index(left[0]), (segments, left)

    # The schedule and its op records travel in the log: the promoted slave has both.
    master.kill()
    wait_until("the slave to notice", lambda: not slave_admin.GetReplicationStatus(pb.GetReplicationStatusRequest(), timeout=5).connected)
    slave_admin.PromoteToMaster(pb.PromoteToMasterRequest(), metadata=AUTH, timeout=30)
    assert slave_admin.GetBrokerStatus(pb.GetBrokerStatusRequest(), timeout=5).pending_delay_messages == 2
    got = consume(slave.endpoint, GROUP, DELAY_TOPIC, 2, then_nothing=True)
    assert time.time() >= due - 0.1, "a delay message came before it was due"
    assert sorted(m.body for m in got) == [b"later-0", b"later-1"]


def test_a_sync_master_answers_once_its_slave_has_the_message(broker_factory, admin_pb):
    pb, _ = admin_pb
    config = dict(MASTER_CONFIG, flushMode="async", replicationTimeoutMillis=1000)
    master = broker_factory(config, extra=["--role", "SYNC_MASTER", "--admin-token", TOKEN])
    master_admin = admin_stub(admin_pb, master)

    # No slave follows: the send fails (HA_NOT_AVAILABLE), though the master keeps the message.
    p = producer(master.endpoint, TOPIC)
    try:
        with pytest.raises(Exception):
            p.send(message(TOPIC, b"unreplicated"))
    finally:
        p.shutdown()
    queues = master_admin.DescribeTopic(pb.DescribeTopicRequest(topic=TOPIC), timeout=5).queues
    stored = [q for q in queues if q.max_offset > 0]
    assert stored, "the master keeps what it could not replicate"
    first = master_admin.QueryMessage(
        pb.QueryMessageRequest(position=pb.QueuePosition(queue_id=stored[0].queue_id, offset=0), topic=TOPIC, max_count=1), timeout=5)
    assert [m.body for m in first.messages] == [b"unreplicated"]

    slave = broker_factory({"flushMode": "async"}, extra=["--role", "SLAVE", "--broker-id", "2", "--master", master.endpoint, "--admin-token", TOKEN])
    slave_admin = admin_stub(admin_pb, slave)
    wait_until("the slave to catch up", caught_up(pb, master_admin, slave_admin))
    p = producer(master.endpoint, TOPIC)
    try:
        for i in range(20):
            p.send(message(TOPIC, f"replicated-{i}".encode()))
            # Answered only once the slave acknowledged it: the slave already holds it.
            master_end = master_admin.GetBrokerStatus(pb.GetBrokerStatusRequest(), timeout=5).commit_log_max_offset
            slave_end = slave_admin.GetBrokerStatus(pb.GetBrokerStatusRequest(), timeout=5).commit_log_max_offset
            assert slave_end == master_end
    finally:
        p.shutdown()
    status = master_admin.GetReplicationStatus(pb.GetReplicationStatusRequest(), timeout=5)
    assert status.role == "SYNC_MASTER" and [r.broker_id for r in status.replicas] == [2]


def test_replication_settings_are_checked(tmp_path):
    for args, complaint in [
        (["--role", "SLAVE"], "master's address"),
        (["--role", "SLAVE", "--master", "127.0.0.1:1", "--broker-id", "0"], "broker id above 0"),
        (["--role", "MASTER-OF-NONE"], "ASYNC_MASTER, SYNC_MASTER or SLAVE"),
        (["--broker-id", "3"], "a master has broker id 0"),
    ]:
        process = Process([binary("mqbroker"), "--data", str(tmp_path / "bad"), "--port", "0", *args], "mqbroker-bad")
        assert process.proc.wait(timeout=60) != 0
        assert complaint in process.output(), process.output()


def test_a_former_master_whose_log_diverged_is_cut_back_and_follows_the_new_master(broker_factory, admin_pb):
    """A former master with records its successor never got (sent while its slave was down) comes
    back as a slave: its log and the new master's differ from the same offset on. The new master
    refuses to continue it as it is; the slave finds the last record both share (CompareRecords),
    cuts its log back to it, and copies the new master's records from there."""
    pb, _ = admin_pb
    old, new, old_admin, new_admin = async_master_and_slave(broker_factory, admin_pb)
    for i in range(5):
        send_one(old.endpoint, f"common-{i}".encode())
    wait_until("the slave to catch up", caught_up(pb, old_admin, new_admin))
    shared = status_of(pb, new_admin).commit_log_max_offset
    new.kill()
    for i in range(3):
        send_one(old.endpoint, f"only-on-old-{i}".encode())
    old.kill()
    new.start()
    assert new_admin.PromoteToMaster(pb.PromoteToMasterRequest(), metadata=AUTH, timeout=30).broker_id == 0
    for i in range(2):
        send_one(new.endpoint, f"only-on-new-{i}-longer".encode())

    # Back at its address (its records carry it as their store host: they are its own to cut).
    rejoined = old
    rejoined.extra = ["--role", "SLAVE", "--broker-id", "2", "--master", new.endpoint, "--admin-token", TOKEN]
    rejoined.start()
    try:
        rejoined_admin = admin_stub(admin_pb, rejoined)
        wait_until("the former master to copy the new master's log", caught_up(pb, new_admin, rejoined_admin))
        output = rejoined.process.output()
        assert "cut back to the last record both share" in output, output[-3000:]
        assert f"to={shared}" in output, output[-3000:]
        # It keeps following: a later send reaches it too.
        send_one(new.endpoint, b"after-the-cut")
        wait_until("the next send to reach it", caught_up(pb, new_admin, rejoined_admin))
        assert status_of(pb, rejoined_admin).last_error == ""
    finally:
        rejoined.stop()


def test_a_slave_keeps_records_its_master_wrote_and_lost(broker_factory, admin_pb):
    """An async-flush master loses the tail of its log (an OS crash: simulated by zeroing the
    tail of its segment file while it is down) after its slave copied it. The slave's log then
    has records the master no longer has, written by the master itself: they may be the last
    copy, so the slave is not cut back; it stays refused and says why."""
    pb, _ = admin_pb
    master, slave, master_admin, slave_admin = async_master_and_slave(broker_factory, admin_pb)
    for i in range(3):
        send_one(master.endpoint, f"kept-{i}".encode())
    wait_until("the slave to catch up", caught_up(pb, master_admin, slave_admin))
    kept = status_of(pb, master_admin).commit_log_max_offset
    for i in range(3):
        send_one(master.endpoint, f"lost-{i}".encode())
    wait_until("the slave to copy the rest", caught_up(pb, master_admin, slave_admin))
    end = status_of(pb, slave_admin).commit_log_max_offset
    master.kill()
    segments = [os.path.join(root, f) for root, _, files in os.walk(master.data_dir)
                if os.path.basename(root) == "commitlog" for f in files if len(f) == 20 and f.isdigit()]
    assert len(segments) == 1 and segments[0].endswith("0" * 20), segments
    with open(segments[0], "r+b") as f:
        f.seek(kept)
        f.write(b"\0" * (end - kept))
    master.start()
    assert status_of(pb, master_admin).commit_log_max_offset == kept
    send_one(master.endpoint, b"after-the-loss-and-longer")
    status = wait_until("the slave to report what it keeps",
                        lambda: (lambda s: s if "not cut back" in s.last_error else None)(status_of(pb, slave_admin)))
    assert not status.connected
    assert status.commit_log_max_offset == end
    assert "this broker did not write: not cut back" in slave.process.output()
    # Refused again on every reconnection: the verdict stands without a new search or log line.
    time.sleep(3)
    assert slave.process.output().count("this broker did not write: not cut back") == 1
    assert "not cut back" in status_of(pb, slave_admin).last_error


def status_of(pb, stub):
    return stub.GetReplicationStatus(pb.GetReplicationStatusRequest(), timeout=5)


def raw_send(channel, body, topic=TOPIC):
    """One SendMessage through the protocol's stubs, at once (no client start-up, no retry)."""
    sp = d.SystemProperties(message_id=uuid.uuid4().hex, message_type=d.NORMAL, body_encoding=d.IDENTITY)
    m = d.Message(topic=d.Resource(name=topic), system_properties=sp, body=body)
    return service_pb2_grpc.MessagingServiceStub(channel).SendMessage(
        s.SendMessageRequest(messages=[m]), metadata=(("x-mq-client-id", "pytest-raw-send"),), timeout=30)


def send_one(endpoint, body, topic=TOPIC):
    p = producer(endpoint, topic)
    try:
        p.send(message(topic, body))
    finally:
        p.shutdown()


def test_mqadmin_promotes_a_slave_whose_master_still_answers_only_with_force(broker_factory, admin_pb):
    pb, _ = admin_pb
    _, slave, _, slave_admin = async_master_and_slave(broker_factory, admin_pb)
    promote = [binary("mqadmin"), "promoteToMaster", "-b", slave.endpoint, "--token", TOKEN]
    refused = subprocess.run(promote, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "still answers" in refused.stderr, refused.stderr[-2000:]
    forced = subprocess.run(promote + ["--force"], capture_output=True, text=True, timeout=60)
    assert forced.returncode == 0, forced.stderr[-2000:]
    status = slave_admin.GetReplicationStatus(pb.GetReplicationStatusRequest(), timeout=5)
    assert (status.role, status.broker_id) == ("ASYNC_MASTER", 0)


def test_a_former_master_back_after_a_promotion_is_refused_by_the_nameserver_and_takes_no_writes(broker_factory, admin_pb):
    """The master dies, its slave is promoted; the former master restarts with its old flags. The
    NameServer refuses it (the promoted master's epoch is higher), so routes keep pointing at the
    promoted one, and it fences itself: it takes no sends, even from a client that still knows it."""
    import json
    pb, _ = admin_pb
    ns = Process([binary("mqnamesrv"), "--port", "0"], "mqnamesrv")
    try:
        port = int(ns.wait_for(r"mqnamesrv listening on 127\.0\.0\.1:(\d+)").group(1))
        namesrv = f"127.0.0.1:{port}"

        def masters():
            out = subprocess.run([binary("mqadmin"), "clusterList", "-n", namesrv, "--json"], capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stdout + out.stderr
            return [row["address"] for row in json.loads(out.stdout) if row["role"] == "MASTER"]

        old = broker_factory(MASTER_CONFIG, extra=["--admin-token", TOKEN, "--namesrv", namesrv])
        new = broker_factory({"flushMode": "async"}, extra=["--role", "SLAVE", "--master", old.endpoint, "--admin-token", TOKEN,
                                                            "--namesrv", namesrv])
        old_admin, new_admin = admin_stub(admin_pb, old), admin_stub(admin_pb, new)
        send_one(old.endpoint, b"before")
        wait_until("the slave to catch up", caught_up(pb, old_admin, new_admin))
        assert wait_until("the master's registration", lambda: masters() == [old.endpoint])
        old_log_end = status_of(pb, old_admin).commit_log_max_offset

        old.kill()
        wait_until("the slave to notice", lambda: not new_admin.GetReplicationStatus(pb.GetReplicationStatusRequest(), timeout=5).connected)
        new_admin.PromoteToMaster(pb.PromoteToMasterRequest(), metadata=AUTH, timeout=30)
        assert wait_until("the promoted master's registration", lambda: masters() == [new.endpoint])

        old.start()  # its old flags: a master of broker-a
        # A client that still knows its address sends at once, before the NameServer has
        # answered the registration: the send waits for that answer and is refused, not stored.
        with grpc.insecure_channel(old.endpoint) as channel:
            answer = raw_send(channel, b"to-the-former-master-at-once")
        assert answer.status.code != d.OK and "superseded" in answer.status.message, answer.status
        old.process.wait_for(r"superseded as master", timeout=60)
        assert "taking writes" not in old.process.output()
        assert masters() == [new.endpoint]
        with pytest.raises(Exception):
            send_one(old.endpoint, b"to-the-former-master")
        status = status_of(pb, old_admin)
        assert status.commit_log_max_offset == old_log_end
        assert status.role == "ASYNC_MASTER" and status.writes_refused.startswith("superseded as master"), status
        ha = subprocess.run([binary("mqadmin"), "haStatus", "-b", old.endpoint], capture_output=True, text=True, timeout=60)
        assert ha.returncode == 0 and "takes no writes: superseded as master" in ha.stdout, ha.stdout + ha.stderr
        # Superseded, it is not promoted again by mistake.
        with pytest.raises(grpc.RpcError) as again:
            old_admin.PromoteToMaster(pb.PromoteToMasterRequest(), metadata=AUTH, timeout=10)
        assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "superseded" in again.value.details()
        # The promoted master keeps its epoch (config/promotion.json) across a restart, here with
        # master flags: the former master, started again after that, is refused again.
        with open(os.path.join(new.data_dir, "config", "promotion.json")) as f:
            assert json.load(f)["epoch"] > 1_700_000_000_000
        new.stop()
        new.extra = ["--admin-token", TOKEN, "--namesrv", namesrv]
        new.start()
        assert wait_until("the promoted master's registration after its restart", lambda: masters() == [new.endpoint])
        old.stop()
        old.start()
        old.process.wait_for(r"superseded as master", timeout=60)
        send_one(new.endpoint, b"after")
        assert masters() == [new.endpoint]
    finally:
        ns.stop()


def test_a_master_whose_nameservers_do_not_answer_takes_writes_after_its_registration_hold(broker_factory):
    """With no NameServer answering, a master holds writes for --registration-hold seconds, then
    takes them as before: a send made at once waits for that, and is stored."""
    from conftest import free_port
    silent = f"127.0.0.1:{free_port()}"  # nothing listens there
    broker = broker_factory({"flushMode": "async", "autoCreate": True}, extra=["--namesrv", silent, "--registration-hold", "2"])
    started = time.monotonic()
    with grpc.insecure_channel(broker.endpoint) as channel:
        answer = raw_send(channel, b"after the hold")
    waited = time.monotonic() - started
    assert answer.status.code == d.OK, answer.status
    assert 0.5 <= waited < 20, waited  # the hold counts from before the bind and the "listening" line
    assert "no NameServer answered the registration: taking writes anyway" in broker.process.output()
    shown = subprocess.run([binary("mqadmin"), "getBrokerConfig", "-b", broker.endpoint, "--json"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    import json
    assert any(r["key"] == "registrationHoldSeconds" and r["value"] == "2" for r in json.loads(shown.stdout)), shown.stdout
