"""mqadmin's RocketMQ verbs against real mqnamesrv + mqbroker processes."""
import json
import subprocess
import time

import pytest
import grpc
from google.protobuf import duration_pb2
from rocketmq import ClientConfiguration, Credentials, FilterExpression, Message, Producer, SimpleConsumer
from rocketmq.grpc_protocol import definition_pb2 as d, service_pb2 as s, service_pb2_grpc

from conftest import Process, binary

TOKEN = "verbs-token"


@pytest.fixture
def cluster(broker_factory):
    ns = Process([binary("mqnamesrv"), "--port", "0"], "mqnamesrv")
    try:
        port = int(ns.wait_for(r"mqnamesrv listening on 127\.0\.0\.1:(\d+)").group(1))
        namesrv = f"127.0.0.1:{port}"
        broker = broker_factory({"flushMode": "async"}, extra=["--namesrv", namesrv, "--admin-token", TOKEN])
        yield namesrv, broker
    finally:
        ns.stop()


def mqadmin(*args, check=True):
    out = subprocess.run([binary("mqadmin"), *args], capture_output=True, text=True, timeout=60)
    if check:
        assert out.returncode == 0, out.stdout + out.stderr
    return out


def rows(*args):
    return json.loads(mqadmin(*args, "--json").stdout)


def test_verbs_manage_topics_groups_and_offsets(cluster):
    namesrv, broker = cluster
    # Registration reaches the NameServer.
    deadline = time.monotonic() + 15
    while not rows("clusterList", "-n", namesrv) and time.monotonic() < deadline:
        time.sleep(0.2)
    [row] = rows("clusterList", "-n", namesrv)
    assert (row["broker"], row["role"], row["address"], row["id"]) == ("broker-a", "MASTER", broker.endpoint, 0)
    assert rows("clusterList", "-n", namesrv, "-c", row["cluster"]) == [row]
    other = mqadmin("clusterList", "-n", namesrv, "-c", "no-such-cluster", check=False)
    assert other.returncode != 0 and f"knows {row['cluster']}" in other.stderr

    refused = mqadmin("updateTopic", "-n", namesrv, "-t", "orders", "-w", "4", "-r", "4", check=False)
    assert refused.returncode != 0 and "authorization" in (refused.stdout + refused.stderr)

    [created] = rows("updateTopic", "-n", namesrv, "-t", "orders", "-w", "4", "-r", "4", "--token", TOKEN)
    assert (created["topic"], created["queues"], created["permission"]) == ("orders", 4, "6")
    deadline = time.monotonic() + 15
    while "orders" not in [r["topic"] for r in rows("topicList", "-n", namesrv)] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "orders" in [r["topic"] for r in rows("topicList", "-n", namesrv)]
    assert [r["queue"] for r in rows("topicRoute", "-n", namesrv, "-t", "orders")] == [0, 1, 2, 3]
    rows("updateSubGroup", "-b", broker.endpoint, "-g", "billing", "--token", TOKEN)

    producer = Producer(ClientConfiguration(broker.endpoint, Credentials()), ("orders",))
    producer.startup()
    for i in range(6):
        m = Message(); m.topic = "orders"; m.body = f"o{i}".encode(); m.keys = f"order-{i}"
        producer.send(m)
    producer.shutdown()

    # Counts and offsets are JSON numbers, for scripts.
    status = rows("topicStatus", "-b", broker.endpoint, "-t", "orders")
    assert sum(q["maxOffset"] for q in status) == 6
    progress = rows("consumerProgress", "-b", broker.endpoint, "-g", "billing", "-t", "orders")
    assert sum(q["lag"] for q in progress) == 6
    reset = rows("resetOffsetByTime", "-b", broker.endpoint, "-g", "billing", "-t", "orders", "-s", "now", "--token", TOKEN)
    assert sum(q["newOffset"] for q in reset) == 6
    assert sum(q["lag"] for q in rows("consumerProgress", "-b", broker.endpoint, "-g", "billing", "-t", "orders")) == 0

    [found] = rows("queryMsgByKey", "-b", broker.endpoint, "-t", "orders", "-k", "order-3")
    assert found["body"] == "o3"
    assert rows("queryMsgById", "-b", broker.endpoint, "-i", found["messageId"])[0]["body"] == "o3"
    assert rows("queryMsgByOffset", "-b", broker.endpoint, "-t", "orders", "-q", str(found["queue"]), "-o", str(found["offset"]))[0]["body"] == "o3"

    assert any(r["key"] == "autoCreateTopics *" and r["value"] == "false" for r in rows("getBrokerConfig", "-b", broker.endpoint))
    assert rows("updateBrokerConfig", "-b", broker.endpoint, "-k", "autoCreateTopics", "-v", "true", "--token", TOKEN)[0]["value"] == "true"
    assert rows("brokerStatus", "-b", broker.endpoint)[0]["broker"] == "broker-a"

    [resent] = rows("resendMsg", "-b", broker.endpoint, "-g", "billing", "-i", found["messageId"], "--token", TOKEN)
    assert resent["retryTopic"] == "%RETRY%billing"
    # The resent copy waits in the group's retry topic: lag, whether the group read from it yet or not.
    lagging = [(r["topic"], r["lag"]) for r in rows("consumerProgress", "-b", broker.endpoint, "-g", "billing") if r["lag"] != 0]
    assert lagging == [("%RETRY%billing", 1)]
    # A lookup by id lists every stored copy, the original first.
    assert [c["topic"] for c in rows("queryMsgById", "-b", broker.endpoint, "-i", found["messageId"])] == ["orders", "%RETRY%billing"]
    assert rows("dlqList", "-b", broker.endpoint, "-g", "billing") == []
    [redrive] = rows("dlqRedrive", "-b", broker.endpoint, "-g", "billing", "--token", TOKEN)
    assert redrive["redriven"] == 0
    rows("deleteSubGroup", "-b", broker.endpoint, "-g", "billing", "--token", TOKEN)
    gone = mqadmin("consumerProgress", "-b", broker.endpoint, "-g", "billing", check=False)
    assert gone.returncode != 0 and "does not exist" in (gone.stdout + gone.stderr)

    rows("deleteTopic", "-b", broker.endpoint, "-t", "orders", "--token", TOKEN)
    missing = mqadmin("topicStatus", "-b", broker.endpoint, "-t", "orders", check=False)
    assert missing.returncode != 0 and "does not exist" in (missing.stdout + missing.stderr)
    table = mqadmin("clusterList", "-n", namesrv).stdout.splitlines()
    assert table[0].split()[:3] == ["cluster", "broker", "id"]


def test_update_verbs_change_only_what_they_are_given(cluster):
    _, broker = cluster
    b = ("-b", broker.endpoint, "--token", TOKEN)
    [made] = rows("updateTopic", *b, "-t", "payments", "-r", "4", "-w", "4", "--message-types", "FIFO")
    assert (made["queues"], made["permission"], made["messageTypes"]) == (4, "6", "FIFO")
    # Read-only, nothing else said: still 4 FIFO queues.
    [changed] = rows("updateTopic", *b, "-t", "payments", "-p", "4")
    assert (changed["queues"], changed["permission"], changed["messageTypes"]) == (4, "4", "FIFO")
    refused = mqadmin("updateTopic", *b, "-t", "payments", "-p", "0", check=False)
    assert refused.returncode != 0 and "-p 0" in refused.stderr

    # Fewer queues are refused while a queue to go holds messages.
    rows("updateTopic", *b, "-t", "payments", "-p", "6")
    producer = Producer(ClientConfiguration(broker.endpoint, Credentials()), ("payments",))
    producer.startup()
    for i in range(8):
        m = Message(); m.topic = "payments"; m.body = b"p"; m.message_group = f"g{i}"
        producer.send(m)
    producer.shutdown()
    held = {q["queue"] for q in rows("topicStatus", "-b", broker.endpoint, "-t", "payments") if q["maxOffset"] != q["minOffset"]}
    assert held - {0}, "the groups all hashed to queue 0"
    shrink = mqadmin("updateTopic", *b, "-t", "payments", "-r", "1", "-w", "1", check=False)
    assert shrink.returncode != 0 and "still hold messages" in shrink.stderr
    assert rows("updateTopic", *b, "-t", "payments", "-r", "1", "-w", "1", "--force")[0]["queues"] == 1

    [group] = rows("updateSubGroup", *b, "-g", "ordered", "--fifo", "--max-attempts", "5")
    assert (group["maxAttempts"], group["fifo"], group["consumeEnabled"]) == (5, True, True)
    [disabled] = rows("updateSubGroup", *b, "-g", "ordered", "--disable")
    assert (disabled["maxAttempts"], disabled["fifo"], disabled["consumeEnabled"]) == (5, True, False)
    [again] = rows("updateSubGroup", *b, "-g", "ordered", "--enable", "--no-fifo")
    assert (again["maxAttempts"], again["fifo"], again["consumeEnabled"]) == (5, False, True)


def test_read_and_write_queue_counts_drain_queues_before_removing_them(cluster):
    # RocketMQ's way to remove queues without losing messages: lower the write count, let the
    # consumers drain the queues past it, then lower the read count.
    namesrv, broker = cluster
    b = ("-b", broker.endpoint, "--token", TOKEN)
    topic = "shrinking"
    [made] = rows("updateTopic", *b, "-t", topic, "-r", "4")  # a new topic: -w follows -r
    assert (made["queues"], made["readQueues"], made["writeQueues"]) == (4, 4, 4)
    rows("updateSubGroup", *b, "-g", "drainer")
    config = ClientConfiguration(broker.endpoint, Credentials())
    producer = Producer(config, (topic,))
    producer.startup()

    def send(count):
        for _ in range(count):
            m = Message(); m.topic = topic; m.body = b"x"
            producer.send(m)

    def held():
        return {q["queue"]: q["maxOffset"] - q["minOffset"] for q in rows("topicStatus", "-b", broker.endpoint, "-t", topic)}

    def route_permissions(where):
        return {r["queue"]: r["permission"] for r in rows("topicRoute", *where, "-t", topic)}

    send(8)
    assert all(held()[q] > 0 for q in range(4)), held()

    [lowered] = rows("updateTopic", *b, "-t", topic, "-w", "2")
    assert (lowered["queues"], lowered["readQueues"], lowered["writeQueues"]) == (4, 4, 2)
    def settled_route(where, expected):
        deadline = time.monotonic() + 15
        while route_permissions(where) != expected and time.monotonic() < deadline:
            time.sleep(0.2)
        return route_permissions(where)

    expected = {0: "READ_WRITE", 1: "READ_WRITE", 2: "READ", 3: "READ"}
    assert settled_route(("-n", namesrv), expected) == expected, "the NameServer's route"
    assert route_permissions(("-b", broker.endpoint)) == expected, "the broker's own route"
    # The broker places new messages only in its write queues, whatever the client's route says.
    before = held()
    channel = grpc.insecure_channel(broker.endpoint)
    stub = service_pb2_grpc.MessagingServiceStub(channel)
    meta = (("x-mq-client-id", "pytest-rw"), ("x-mq-language", "SWIFT"))  # a client that picks queues itself
    for queue in (3, 2, 1, 0):
        sp = d.SystemProperties(message_id=f"rw-{queue}", body_encoding=d.IDENTITY, message_type=d.NORMAL, queue_id=queue)
        answer = stub.SendMessage(s.SendMessageRequest(messages=[d.Message(topic=d.Resource(name=topic), system_properties=sp, body=b"y")]),
                                  metadata=meta, timeout=10)
        # A queue the client chose that takes no writes is refused, retryably (its receipt
        # would name that queue: the broker may not move the message elsewhere).
        expected_code = d.PRECONDITION_FAILED if queue >= 2 else d.OK
        assert answer.status.code == expected_code, (queue, answer.status)
    send(10)
    after = held()
    assert [after[q] - before[q] for q in (2, 3)] == [0, 0], (before, after)
    assert sum(after.values()) - sum(before.values()) == 12
    # Fewer read than write queues would strand messages: refused unless --force.
    fewer = mqadmin("updateTopic", *b, "-t", topic, "-r", "1", check=False)
    assert fewer.returncode != 0 and "no consumer reads" in fewer.stderr, fewer.stderr

    # Queue 3 is read no more by a pull either.
    pull = s.PullMessageRequest(
        group=d.Resource(name="drainer"), message_queue=d.MessageQueue(topic=d.Resource(name=topic), id=3), offset=0, batch_size=8,
        filter_expression=d.FilterExpression(type=d.TAG, expression="*"), long_polling_timeout=duration_pb2.Duration(seconds=0))
    rows("updateTopic", *b, "-t", topic, "-r", "3", "-w", "4", "--force")
    refused = list(stub.PullMessage(pull, metadata=meta, timeout=10))
    assert refused[0].status.code == d.FORBIDDEN and "not readable" in refused[0].status.message, refused
    rows("updateTopic", *b, "-t", topic, "-r", "4", "-w", "2")
    channel.close()

    # Lowering the read count is refused while queues past it hold messages not consumed...
    refused = mqadmin("updateTopic", *b, "-t", topic, "-r", "2", check=False)
    assert refused.returncode != 0 and "2, 3" in refused.stderr and "not consumed" in refused.stderr, refused.stderr
    # ... and taken once the group consumed them all.
    consumer = SimpleConsumer(config, "drainer", {topic: FilterExpression("*")}, await_duration=1)
    consumer.startup()
    total = sum(held().values())
    got = 0
    deadline = time.monotonic() + 30
    while got < total and time.monotonic() < deadline:
        for m in consumer.receive(16, 20):
            consumer.ack(m)
            got += 1
    assert got == total
    # A group whose consumer subscribes but has taken nothing yet counts too (its settings
    # say it consumes the topic): its lag is every message, so the queues are not drained.
    rows("updateSubGroup", *b, "-g", "watcher")
    watcher = SimpleConsumer(config, "watcher", {topic: FilterExpression("*")}, await_duration=1)
    watcher.startup()
    deadline = time.monotonic() + 15
    while not [r for r in rows("consumerProgress", "-b", broker.endpoint, "-g", "watcher") if r["topic"] == topic] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sum(r["lag"] for r in rows("consumerProgress", "-b", broker.endpoint, "-g", "watcher") if r["topic"] == topic) == total
    watched = mqadmin("updateTopic", *b, "-t", topic, "-r", "2", check=False)
    assert watched.returncode != 0 and "not consumed" in watched.stderr, watched.stderr
    watcher.shutdown()  # it says so to the broker: no longer a consumer of the topic
    consumer.shutdown()
    producer.shutdown()
    [removed] = rows("updateTopic", *b, "-t", topic, "-r", "2")
    assert (removed["queues"], removed["readQueues"], removed["writeQueues"]) == (2, 2, 2)
    assert settled_route(("-b", broker.endpoint), {0: "READ_WRITE", 1: "READ_WRITE"}) == {0: "READ_WRITE", 1: "READ_WRITE"}


def test_verbs_through_a_nameserver_ask_every_broker_and_name_the_one_that_failed(broker_factory):
    ns = Process([binary("mqnamesrv"), "--port", "0"], "mqnamesrv")
    try:
        port = int(ns.wait_for(r"mqnamesrv listening on 127\.0\.0\.1:(\d+)").group(1))
        namesrv = f"127.0.0.1:{port}"
        a = broker_factory({"flushMode": "async"}, extra=["--namesrv", namesrv, "--admin-token", TOKEN, "--broker-name", "broker-a"])
        b = broker_factory({"flushMode": "async"}, extra=["--namesrv", namesrv, "--admin-token", "other-token", "--broker-name", "broker-b"])
        deadline = time.monotonic() + 15
        while len(rows("clusterList", "-n", namesrv)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(rows("clusterList", "-n", namesrv)) == 2
        # A group that only broker-b has: broker-a's NOT_FOUND means "not here", not a failure.
        rows("updateSubGroup", "-b", b.endpoint, "-g", "only-b", "--token", "other-token")
        rows("updateTopic", "-b", b.endpoint, "-t", "only-b-topic", "--token", "other-token")
        assert {r["broker"] for r in rows("consumerProgress", "-n", namesrv, "-g", "only-b", "-t", "only-b-topic")} == {b.endpoint}
        # broker-b refuses this token, broker-a takes it: a's answer is printed, b is named, exit 1.
        out = mqadmin("updateSubGroup", "-n", namesrv, "-g", "everywhere", "--token", TOKEN, "--json", check=False)
        assert out.returncode == 1
        assert [r["broker"] for r in json.loads(out.stdout)] == [a.endpoint]
        assert f"broker {b.endpoint}" in out.stderr and "UNAUTHENTICATED" in out.stderr
        missing = mqadmin("consumerProgress", "-n", namesrv, "-g", "nowhere", check=False)
        assert missing.returncode != 0 and "does not exist" in missing.stderr
    finally:
        ns.stop()


def test_verbs_take_ipv6_and_refuse_a_malformed_address():
    try:
        import socket
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    ns = Process([binary("mqnamesrv"), "--host", "::1", "--port", "0"], "mqnamesrv")
    try:
        port = int(ns.wait_for(r"mqnamesrv listening on ::1:(\d+)").group(1))
        assert rows("clusterList", "-n", f"[::1]:{port}") == []
    finally:
        ns.stop()
    for bad in ("nonsense", "::1:9876", "127.0.0.1:0", "[::1]9876"):
        out = mqadmin("clusterList", "-n", bad, check=False)
        assert out.returncode != 0 and "is not host:port" in out.stderr, (bad, out.stdout, out.stderr)


def test_queryMsgTraceById_follows_a_message_through_official_clients(broker_factory):
    """A message sent and consumed by the official Python client, redelivered once, resent to its
    group by an operator: the trace shows every copy, delivery attempt and acknowledgement."""
    from rocketmq import FilterExpression, SimpleConsumer
    broker = broker_factory({"flushMode": "async", "autoCreate": True}, extra=["--admin-token", TOKEN])
    config = ClientConfiguration(broker.endpoint, Credentials())
    producer = Producer(config, ("traced",))
    producer.startup()
    m = Message(); m.topic = "traced"; m.body = b"follow me"
    message_id = producer.send(m).message_id
    producer.shutdown()

    consumer = SimpleConsumer(config, "tracers", {"traced": FilterExpression("*")}, await_duration=2)
    consumer.startup()
    try:
        def receive_one(invisible):
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                got = consumer.receive(1, invisible)
                if got:
                    return got[0]
            raise AssertionError("nothing received")
        first = receive_one(2)          # not acked: comes back once invisible time is over
        assert first.message_id == message_id
        second = receive_one(30)
        assert second.message_id == message_id
        consumer.ack(second)
        rows("resendMsg", "-b", broker.endpoint, "-g", "tracers", "-i", message_id, "--token", TOKEN)
        consumer.ack(receive_one(30))   # the resent copy, from the group's retry topic
    finally:
        consumer.shutdown()

    trace = rows("queryMsgTraceById", "-b", broker.endpoint, "-i", message_id)
    events = [(r["event"], r["group"], r["topic"], r["attempt"]) for r in trace]
    assert events == [
        ("stored", "", "traced", None),
        ("delivered", "tracers", "traced", 1),
        ("delivered", "tracers", "traced", 2),
        ("acked", "tracers", "traced", None),
        ("stored", "", "%RETRY%tracers", None),
        ("delivered", "tracers", "%RETRY%tracers", 1),
        ("acked", "tracers", "%RETRY%tracers", None),
    ], trace
    times = [r["time"] for r in trace]
    assert times == sorted(times)
    missing = mqadmin("queryMsgTraceById", "-b", broker.endpoint, "-i", "NO-SUCH-MESSAGE", check=False)
    assert missing.returncode != 0 and "no message found" in (missing.stdout + missing.stderr)
