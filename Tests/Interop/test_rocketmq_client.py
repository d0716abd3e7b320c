"""The official RocketMQ 5 Python client (rocketmq-python-client, nobody here wrote it) against
real `mqbroker` processes: sending, pop-style consumption, retries, dead letters, restarts."""
import json
import subprocess
import threading
import time
import uuid

import pytest
from rocketmq import (ClientConfiguration, ConsumeResult, Credentials, FilterExpression, Message,
                      MessageListener, Producer, PushConsumer, SimpleConsumer)
from rocketmq.grpc_protocol import FilterType
from rocketmq.v5.exception import BadRequestException, ClientException

from conftest import binary

BROKER_CONFIG = {
    "flushMode": "sync",
    "autoCreate": True,
    "topics": [
        {"name": "orders-fifo", "queueCount": 4, "permission": 6, "messageTypes": ["FIFO"]},
        {"name": "normal-only", "queueCount": 2, "permission": 6, "messageTypes": ["NORMAL"]},
    ],
    "groups": [
        {"name": "fifo-group", "maxDeliveryAttempts": 16, "fifo": True, "consumeEnabled": True},
        {"name": "dlq-group", "maxDeliveryAttempts": 2, "fifo": False, "consumeEnabled": True},
    ],
}


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def message(topic, body, tag=None, keys=(), group=None, props=None):
    m = Message()
    m.topic = topic
    m.body = body
    if tag:
        m.tag = tag
    if keys:
        m.keys = keys[0] if len(keys) == 1 else keys[0]
    if group:
        m.message_group = group
    for k, v in (props or {}).items():
        m.add_property(k, v)
    return m


class Clients:
    """Starts clients against one endpoint and shuts them all down at the end."""

    def __init__(self, endpoint):
        self.config = ClientConfiguration(endpoint, Credentials(), request_timeout=10)
        self.started = []

    def producer(self, *topics):
        p = Producer(self.config, topics)
        p.startup()
        self.started.append(p)
        return p

    def simple(self, group, topic, expression="*", await_duration=2, filter_type=FilterType.TAG):
        c = SimpleConsumer(self.config, group, {topic: FilterExpression(expression, filter_type)}, await_duration=await_duration)
        c.startup()
        self.started.append(c)
        return c

    def close(self):
        for client in reversed(self.started):
            try:
                client.shutdown()
            except Exception:
                pass


@pytest.fixture
def broker(broker_factory):
    return broker_factory(BROKER_CONFIG)


@pytest.fixture
def clients(broker):
    c = Clients(broker.endpoint)
    yield c
    c.close()


def receive_exactly(consumer, count, invisible=30, timeout=30):
    """Receives and acks `count` messages, never asking for more than are still wanted (so none
    is left in flight), or fewer if `timeout` passes first."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        for m in consumer.receive(count - len(got), invisible):
            consumer.ack(m)
            got.append(m)
    return got


def receive_until(consumer, count, invisible=20, timeout=30, ack=True):
    """Receives (and acks) until `count` messages arrived or `timeout` passed."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        for m in consumer.receive(32, invisible):
            got.append(m)
            if ack:
                consumer.ack(m)
    return got


def test_sync_and_async_send_then_receive_everything_once(clients):
    topic = unique("plain")
    producer = clients.producer(topic)
    sent = {}
    for i in range(10):
        receipt = producer.send(message(topic, f"sync-{i}".encode(), tag="a", keys=(f"key-{i}",), props={"n": str(i)}))
        sent[receipt.message_id] = f"sync-{i}".encode()
    futures = [producer.send_async(message(topic, f"async-{i}".encode(), tag="a")) for i in range(10)]
    for i, f in enumerate(futures):
        sent[f.result(timeout=10).message_id] = f"async-{i}".encode()
    assert len(sent) == 20

    consumer = clients.simple(unique("group"), topic)
    got = receive_until(consumer, 20)
    assert {m.message_id: m.body for m in got} == sent
    first = next(m for m in got if m.body == b"sync-3")
    assert first.tag == "a" and first.keys == {"key-3"} and first.properties == {"n": "3"}
    assert all(m.delivery_attempt == 1 for m in got)
    assert consumer.receive(32, 20) == []  # everything acked: nothing comes back


def test_a_producer_that_leaves_the_queue_to_the_broker_gets_its_messages_spread(broker, clients):
    # This client never sets queue_id (proto3's 0): the broker picks, round-robin.
    from rocketmq.grpc_protocol import definition_pb2 as d, service_pb2 as s, service_pb2_grpc
    import grpc

    def ends():
        with grpc.insecure_channel(broker.endpoint) as channel:
            stub = service_pb2_grpc.MessagingServiceStub(channel)
            answers = [stub.QueryOffset(s.QueryOffsetRequest(
                message_queue=d.MessageQueue(topic=d.Resource(name="normal-only"), id=q), query_offset_policy=d.END),
                metadata=(("x-mq-client-id", "pytest"),), timeout=10) for q in (0, 1)]
        return [a.offset for a in answers]

    producer = clients.producer("normal-only")
    before = ends()
    for i in range(8):
        producer.send(message("normal-only", b"spread-%d" % i))
    assert [a - b for a, b in zip(ends(), before)] == [4, 4]


def test_tag_filter_delivers_only_matching_tags(clients):
    topic = unique("tags")
    producer = clients.producer(topic)
    for tag in ["a", "b", "c", "a"]:
        producer.send(message(topic, tag.encode(), tag=tag))
    consumer = clients.simple(unique("group"), topic, expression="a || c")
    got = receive_until(consumer, 3, timeout=10)
    assert sorted(m.body for m in got) == [b"a", b"a", b"c"]


def test_sql92_filter_delivers_only_messages_whose_properties_match(clients):
    topic = unique("sql")
    producer = clients.producer(topic)
    orders = [("eu", "150"), ("eu", "50"), ("us", "500"), ("apac", "900"), ("eu", None)]
    for region, amount in orders:
        props = {"region": region} | ({"amount": amount} if amount else {})
        producer.send(message(topic, f"{region}-{amount}".encode(), tag="order", props=props))
    consumer = clients.simple(unique("group"), topic, filter_type=FilterType.SQL,
                              expression="amount > 100 AND region IN ('eu', 'apac') AND TAGS = 'order'")
    got = receive_until(consumer, 2, timeout=10)
    assert sorted(m.body for m in got) == [b"apac-900", b"eu-150"]
    assert consumer.receive(32, 20) == []  # nothing else passes


def test_malformed_sql92_filter_is_refused(clients):
    topic = unique("sql-bad")
    clients.producer(topic)
    consumer = SimpleConsumer(clients.config, unique("group"), {topic: FilterExpression("amount >", FilterType.SQL)}, await_duration=1)
    clients.started.append(consumer)
    with pytest.raises(BadRequestException) as refused:
        consumer.startup()
        consumer.receive(1, 20)
    # 40010 is ILLEGAL_FILTER_EXPRESSION; the message says where the expression broke.
    assert "40010" in str(refused.value) and "at character 9" in str(refused.value), refused.value


def test_fifo_messages_arrive_in_order_per_message_group(clients):
    producer = clients.producer("orders-fifo")
    expected = {}
    for i in range(12):
        group = f"order-{i % 3}"
        producer.send(message("orders-fifo", f"{group}:{i}".encode(), group=group))
        expected.setdefault(group, []).append(f"{group}:{i}".encode())
    consumer = clients.simple("fifo-group", "orders-fifo")
    seen = {}
    deadline = time.monotonic() + 30
    while sum(len(v) for v in seen.values()) < 12 and time.monotonic() < deadline:
        batch = consumer.receive(32, 20)
        # At most one message per message group is in flight at a time.
        groups = [m.message_group for m in batch]
        assert len(groups) == len(set(groups)), groups
        for m in batch:
            seen.setdefault(m.message_group, []).append(m.body)
            consumer.ack(m)
    assert seen == expected


def test_change_invisible_duration_then_ack_with_the_new_handle(clients):
    topic = unique("invisible")
    clients.producer(topic).send(message(topic, b"x"))
    consumer = clients.simple(unique("group"), topic)
    [m] = receive_until(consumer, 1, ack=False)
    old_handle = m.receipt_handle
    consumer.change_invisible_duration(m, 30)
    assert m.receipt_handle != old_handle
    consumer.ack(m)  # the client acks with the renewed handle
    time.sleep(1)
    assert consumer.receive(32, 20) == []


def test_unacked_message_comes_back_after_invisible_duration_with_next_attempt(clients):
    topic = unique("redeliver")
    clients.producer(topic).send(message(topic, b"again"))
    consumer = clients.simple(unique("group"), topic, await_duration=3)
    [first] = receive_until(consumer, 1, invisible=2, ack=False)
    assert first.delivery_attempt == 1
    [second] = receive_until(consumer, 1, invisible=20, timeout=15, ack=False)
    assert second.body == b"again" and second.message_id == first.message_id
    assert second.delivery_attempt == 2
    consumer.ack(second)


def test_message_goes_to_dead_letter_queue_after_max_attempts(clients):
    topic = unique("poison")
    clients.producer(topic).send(message(topic, b"poison"))
    consumer = clients.simple("dlq-group", topic, await_duration=3)
    for attempt in (1, 2):
        [m] = receive_until(consumer, 1, invisible=1, timeout=15, ack=False)
        assert m.delivery_attempt == attempt
    time.sleep(1.5)
    assert receive_until(consumer, 1, invisible=1, timeout=4, ack=False) == []  # moved, not redelivered
    dlq_reader = clients.simple(unique("dlq-reader"), "%DLQ%dlq-group")
    [dead] = receive_until(dlq_reader, 1, timeout=10)
    assert dead.body == b"poison"


def test_two_consumers_in_one_group_share_messages_exactly_once(clients):
    topic = unique("shared")
    producer = clients.producer(topic)
    bodies = {f"m-{i}".encode() for i in range(60)}
    for body in sorted(bodies):
        producer.send(message(topic, body))
    group = unique("group")
    consumers = [clients.simple(group, topic, await_duration=1) for _ in range(2)]
    results = [[] for _ in consumers]

    def drain(consumer, out):
        idle_deadline = time.monotonic() + 6
        hard_deadline = time.monotonic() + 40
        while time.monotonic() < min(idle_deadline, hard_deadline):
            batch = consumer.receive(8, 30)
            for m in batch:
                out.append(m.body)
                consumer.ack(m)
            if batch:
                idle_deadline = time.monotonic() + 6

    threads = [threading.Thread(target=drain, args=(c, r)) for c, r in zip(consumers, results)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    everything = results[0] + results[1]
    assert len(everything) == len(bodies), "duplicates or losses"
    assert set(everything) == bodies


def test_push_consumer_consumes_with_its_settings_handshake(broker, clients):
    topic = unique("push")
    producer = clients.producer(topic)
    received = []
    done = threading.Event()

    class Listener(MessageListener):
        def consume(self, msg):
            received.append(msg.body)
            if len(received) >= 10:
                done.set()
            return ConsumeResult.SUCCESS

    consumer = PushConsumer(clients.config, unique("push-group"), Listener(), {topic: FilterExpression("*")})
    consumer.startup()
    clients.started.append(consumer)
    for i in range(10):
        producer.send(message(topic, f"p-{i}".encode()))
    assert done.wait(30), f"only {len(received)} of 10 consumed"
    assert sorted(received) == sorted(f"p-{i}".encode() for i in range(10))


def test_sigkill_restart_keeps_every_acknowledged_send_and_never_redelivers_acked(broker):
    topic = unique("crash")
    c = Clients(broker.endpoint)
    try:
        producer = c.producer(topic)
        sent = [f"c-{i}".encode() for i in range(30)]
        for body in sent:
            producer.send(message(topic, body))
        group = unique("group")
        consumer = c.simple(group, topic)
        acked = {m.body for m in receive_until(consumer, 10, timeout=20)}
        assert len(acked) >= 10
    finally:
        c.close()

    broker.kill()
    broker.start()

    c = Clients(broker.endpoint)
    try:
        consumer = c.simple(group, topic)
        rest = [m.body for m in receive_until(consumer, len(sent) - len(acked), timeout=30)]
        assert not (set(rest) & acked), "an acked message was redelivered after the restart"
        assert set(rest) | acked == set(sent), "an acknowledged send was lost"
        assert len(rest) == len(set(rest))
    finally:
        c.close()


def pending_delay_messages(broker):
    out = subprocess.run([binary("mqadmin"), "brokerStatus", "-b", broker.endpoint, "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return int(json.loads(out.stdout)[0]["pendingDelayMessages"])


def test_delay_messages_survive_sigkill_and_arrive_once_when_due_and_recalled_never(broker):
    topic = unique("delay-crash")
    due = int(time.time()) + 12  # seconds (the Python client's unit); room for the kill and restart
    c = Clients(broker.endpoint)
    try:
        producer = c.producer(topic)
        receipts = {}
        for body in (b"d-0", b"d-1", b"d-recalled"):
            m = message(topic, body)
            m.delivery_timestamp = due
            receipts[body] = producer.send(m)
        assert producer.recall_message(topic, receipts[b"d-recalled"].recall_handle) == receipts[b"d-recalled"].message_id
        assert pending_delay_messages(broker) == 2
    finally:
        c.close()

    broker.kill()
    broker.start()
    assert pending_delay_messages(broker) == 2, "pending delay messages were lost by the crash"
    c = Clients(broker.endpoint)
    try:
        consumer = c.simple(unique("group"), topic)
        got = receive_until(consumer, 2, timeout=25)
        assert time.time() >= due - 0.1, "a delay message came before it was due"
        assert sorted(m.body for m in got) == [b"d-0", b"d-1"]
        assert {m.message_id for m in got} == {receipts[b"d-0"].message_id, receipts[b"d-1"].message_id}
        assert receive_until(consumer, 1, timeout=3) == [], "a recalled or already delivered message came"
        # Settled by an op record just after each copy: bounded wait, then none is pending.
        deadline = time.monotonic() + 10
        while pending_delay_messages(broker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert pending_delay_messages(broker) == 0
    finally:
        c.close()


def test_wrong_message_type_is_refused(clients):
    producer = clients.producer("normal-only")
    with pytest.raises(ClientException) as error:
        producer.send(message("normal-only", b"x", group="g1"))  # a FIFO message
    assert "accepts NORMAL" in str(error.value) or "FIFO" in str(error.value)


@pytest.fixture
def two_nameservers_and_a_broker(broker_factory):
    from conftest import Process, binary
    nameservers = []
    try:
        for _ in range(2):
            ns = Process([binary("mqnamesrv"), "--port", "0"], "mqnamesrv")
            port = int(ns.wait_for(r"mqnamesrv listening on 127\.0\.0\.1:(\d+)").group(1))
            nameservers.append((ns, f"127.0.0.1:{port}"))
        broker = broker_factory(BROKER_CONFIG, extra=["--namesrv", ";".join(a for _, a in nameservers)])
        yield [a for _, a in nameservers], broker
    finally:
        for ns, _ in nameservers:
            ns.stop()


def send_once_routed(clients, topic, msg, timeout=20):
    """Starts a producer of the new `topic` on `clients` (pointed at a NameServer) and sends `msg`.
    The NameServers route a topic that does not exist yet like the broker's auto-create template
    (TBW102) once the broker's registration reached them. The Python producer starts even when
    that route is not there yet (it only logs), so the send is what waits. Returns the producer
    and the receipt."""
    deadline = time.monotonic() + timeout
    producer = None
    while True:
        try:
            producer = producer or clients.producer(topic)
            return producer, producer.send(msg)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_clients_pointed_at_either_nameserver_reach_the_broker(two_nameservers_and_a_broker):
    (ns1, ns2), _ = two_nameservers_and_a_broker
    topic = unique("via-namesrv")
    producer_side, consumer_side = Clients(ns1), Clients(ns2)
    try:
        send_once_routed(producer_side, topic, message(topic, b"through the nameserver"))
        consumer = consumer_side.simple(unique("group"), topic)
        [m] = receive_until(consumer, 1, timeout=20)
        assert m.body == b"through the nameserver"
    finally:
        producer_side.close()
        consumer_side.close()


def test_sigterm_stops_cleanly_and_the_next_start_trusts_the_checkpoint(broker):
    import signal
    c = Clients(broker.endpoint)
    try:
        topic = unique("term")
        producer = c.producer(topic)
        for i in range(5):
            producer.send(message(topic, f"t-{i}".encode()))
    finally:
        c.close()
    broker.process.proc.send_signal(signal.SIGTERM)
    assert broker.process.proc.wait(timeout=20) == 0, broker.process.output()[-3000:]
    assert "broker stopped cleanly" in broker.process.output()
    broker.start()
    # A clean stop leaves a checkpoint the next start trusts instead of scanning the log.
    broker.process.wait_for(r"clean=true")
    c = Clients(broker.endpoint)
    try:
        consumer = c.simple(unique("group"), topic)
        assert sorted(m.body for m in receive_until(consumer, 5, timeout=20)) == [f"t-{i}".encode() for i in range(5)]
    finally:
        c.close()


def test_an_ack_wakes_a_long_poll_waiting_for_the_next_fifo_message(clients):
    producer = clients.producer("orders-fifo")
    for i in range(2):
        producer.send(message("orders-fifo", f"wake-{i}".encode(), group="wake-group"))
    holder = clients.simple("fifo-group", "orders-fifo", await_duration=2)
    [first] = receive_until(holder, 1, ack=False)
    assert first.body == b"wake-0"
    waiter = clients.simple("fifo-group", "orders-fifo", await_duration=10)
    result = {}

    def wait():
        began = time.monotonic()
        result["messages"] = waiter.receive(8, 30)
        result["seconds"] = time.monotonic() - began

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(1)  # the waiter is now long-polling: wake-1 is held back behind wake-0
    holder.ack(first)
    thread.join(timeout=20)
    assert [m.body for m in result["messages"]] == [b"wake-1"]
    assert result["seconds"] < 6, f"the receive waited {result['seconds']:.1f} s: the ack did not wake it"
    waiter.ack(result["messages"][0])


def test_a_delay_message_recalled_through_a_nameserver_is_never_delivered(two_nameservers_and_a_broker):
    """The official client sends RecallMessage to its access point: here a NameServer, which
    forwards it to the broker the recall handle names."""
    (ns1, ns2), _ = two_nameservers_and_a_broker
    topic = unique("recall")
    producer_side, consumer_side = Clients(ns1), Clients(ns2)
    try:
        # The first message auto-creates the topic, which then takes that message's type.
        routed = message(topic, b"routed")
        routed.delivery_timestamp = int(time.time()) + 1
        producer, _ = send_once_routed(producer_side, topic, routed)
        due = int(time.time()) + 4  # the Python client takes seconds here (its docstring says ms)
        recalled = message(topic, b"recalled")
        recalled.delivery_timestamp = due
        receipt = producer.send(recalled)
        kept = message(topic, b"kept")
        kept.delivery_timestamp = due
        kept_receipt = producer.send(kept)
        assert receipt.recall_handle and kept_receipt.recall_handle
        assert producer.recall_message(topic, receipt.recall_handle) == receipt.message_id
        # Recalling again is no error.
        assert producer.recall_message(topic, receipt.recall_handle) == receipt.message_id
        with pytest.raises(Exception, match="invalid recall handle"):
            producer.recall_message(topic, "not-a-handle")
        # Milliseconds where the client wants seconds: millennia ahead, refused, not kept forever.
        wrong_unit = message(topic, b"never")
        wrong_unit.delivery_timestamp = int(time.time() * 1000)
        with pytest.raises(Exception, match="more than the 3 days a delay may last"):
            producer.send(wrong_unit)

        consumer = consumer_side.simple(unique("group"), topic, await_duration=2)
        got = receive_until(consumer, 2, timeout=20)
        assert sorted(m.body for m in got) == [b"kept", b"routed"]
        assert time.time() >= due - 0.1, "a delay message came before it was due"
        # The recalled one was due at the same time: nothing else comes.
        assert receive_until(consumer, 1, timeout=3) == []
        # Once due, a delay message can no longer be recalled.
        with pytest.raises(Exception, match="too late to recall"):
            producer.recall_message(topic, kept_receipt.recall_handle)
    finally:
        producer_side.close()
        consumer_side.close()
