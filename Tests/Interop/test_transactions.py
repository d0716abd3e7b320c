"""Transactional messages with the official RocketMQ 5 Python client (rocketmq-python-client,
nobody here wrote it) against real `mqbroker` processes: half messages stay hidden until
committed, rolled-back ones never show, open ones are checked back over the producer's
telemetry stream, and a broker killed with transactions open checks them back after restart."""
import json
import subprocess
import threading
import time
import uuid

import grpc
import pytest
from rocketmq import Message, Producer
from rocketmq.grpc_protocol import TransactionResolution
from rocketmq.grpc_protocol import definition_pb2 as d, service_pb2 as s, service_pb2_grpc
from rocketmq.v5.producer.producer import TransactionChecker
from conftest import Process, binary
from test_rocketmq_client import Clients as BaseClients

TOPIC = "tx-orders"
CONFIG = {
    "flushMode": "sync",
    "autoCreate": True,
    "topics": [
        {"name": TOPIC, "queueCount": 2, "permission": 6, "messageTypes": ["TRANSACTION"]},
        {"name": "plain", "queueCount": 1, "permission": 6, "messageTypes": ["NORMAL"]},
    ],
    # Check back after 1 s, then every second: the tests wait seconds, not minutes.
    "settings": {"transactionTimeoutMillis": "1000", "transactionCheckIntervalMillis": "1000"},
}
META = (("x-mq-client-id", "pytest-transactions"), ("x-mq-language", "PYTHON"))


class Checker(TransactionChecker):
    """Answers check-backs with `answer`, recording what it was asked."""

    def __init__(self, answer=TransactionResolution.COMMIT):
        self.answer = answer
        self.asked = []
        self.lock = threading.Lock()

    def check(self, message):
        with self.lock:
            self.asked.append(message)
        return self.answer


def wait_until(condition, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def message(body, props=None):
    m = Message()
    m.topic = TOPIC
    m.body = body
    m.tag = "tx"
    for k, v in (props or {}).items():
        m.add_property(k, v)
    return m


class Clients(BaseClients):
    """The interop suite's clients, plus transactional producers and consumers of TOPIC."""

    def producer(self, checker):
        p = Producer(self.config, (TOPIC,), checker)
        p.startup()
        self.started.append(p)
        return p

    def consumer(self, group):
        return self.simple(group, TOPIC, await_duration=1)


@pytest.fixture
def broker(broker_factory):
    return broker_factory(CONFIG)


@pytest.fixture
def clients(broker):
    c = Clients(broker.endpoint)
    yield c
    c.close()


def receive_bodies(consumer, seconds):
    """Everything `consumer` receives (and acks) within `seconds`."""
    bodies = []
    deadline = time.time() + seconds
    while time.time() < deadline:
        for m in consumer.receive(32, 30) or []:
            consumer.ack(m)
            bodies.append(bytes(m.body))
    return bodies


def receive_until(consumer, wanted, timeout=15.0):
    got = []
    deadline = time.time() + timeout
    while time.time() < deadline and not wanted <= {bytes(m.body) for m in got}:
        for m in consumer.receive(32, 30) or []:
            consumer.ack(m)
            got.append(m)
    return got


def test_commit_makes_the_half_message_visible(clients):
    # Checked back after 1 s, the producer does not know yet: the transaction stays open.
    checker = Checker(TransactionResolution.TRANSACTION_RESOLUTION_UNSPECIFIED)
    producer = clients.producer(checker)
    consumer = clients.consumer("tx-commit-group")
    tx = producer.begin_transaction()
    body = b"commit-" + uuid.uuid4().hex.encode()
    receipt = producer.send(message(body, {"order": "42"}), tx)
    assert receipt.transaction_id, "the broker hands out a transaction id"
    assert body not in receive_bodies(consumer, 2.5), "a half message is not delivered before its commit"
    tx.commit()
    got = receive_until(consumer, {body})
    assert [bytes(m.body) for m in got] == [body]
    delivered = got[0]
    assert delivered.message_id == receipt.message_id
    assert delivered.properties.get("order") == "42"
    assert delivered.tag == "tx"
    assert len(checker.asked) >= 1, "the open transaction was checked back while it waited"
    assert bytes(checker.asked[0].body) == body


def transactional_send_to_a_new_topic(clients, timeout=20):
    """A transactional producer of a topic nobody created: the client asks for its route (which
    auto-creates it, or routes it like the template through a NameServer) and checks the
    message type against the route before sending. Then a normal producer of the same topic."""
    topic = "tx-new-" + uuid.uuid4().hex[:8]
    transactional = Producer(clients.config, (topic,), Checker(TransactionResolution.COMMIT))
    transactional.startup()
    clients.started.append(transactional)
    half = message(b"tx-on-a-new-topic")
    half.topic = topic
    deadline = time.monotonic() + timeout
    while True:  # through a NameServer, the route appears once the broker's registration did
        try:
            tx = transactional.begin_transaction()
            transactional.send(half, tx)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    tx.commit()
    normal = BaseClients.producer(clients, topic)
    plain = message(b"normal-on-the-same-topic")
    plain.topic = topic
    normal.send(plain)
    consumer = clients.simple("tx-new-group", topic, await_duration=1)
    got = receive_until(consumer, {b"tx-on-a-new-topic", b"normal-on-the-same-topic"})
    assert sorted(bytes(m.body) for m in got) == [b"normal-on-the-same-topic", b"tx-on-a-new-topic"]


def test_a_transactional_producer_of_a_topic_not_created_yet(clients):
    transactional_send_to_a_new_topic(clients)


def test_a_transactional_producer_of_a_topic_not_created_yet_through_a_nameserver(broker_factory):
    ns = Process([binary("mqnamesrv"), "--port", "0"], "mqnamesrv")
    try:
        port = int(ns.wait_for(r"mqnamesrv listening on 127\.0\.0\.1:(\d+)").group(1))
        broker_factory(CONFIG, extra=["--namesrv", f"127.0.0.1:{port}"])
        c = Clients(f"127.0.0.1:{port}")
        try:
            transactional_send_to_a_new_topic(c)
        finally:
            c.close()
    finally:
        ns.stop()


def test_rollback_is_never_delivered(clients):
    producer = clients.producer(Checker(TransactionResolution.COMMIT))
    consumer = clients.consumer("tx-rollback-group")
    dropped = b"rollback-" + uuid.uuid4().hex.encode()
    kept = b"kept-" + uuid.uuid4().hex.encode()
    tx = producer.begin_transaction()
    producer.send(message(dropped), tx)
    tx.rollback()
    tx2 = producer.begin_transaction()
    producer.send(message(kept), tx2)
    tx2.commit()
    got = receive_until(consumer, {kept})
    # Past the 1 s check-back time: a rolled-back transaction is not checked back either.
    more = receive_bodies(consumer, 2.5)
    bodies = [bytes(m.body) for m in got] + more
    assert kept in bodies
    assert dropped not in bodies


def test_open_transaction_is_checked_back_and_committed(clients):
    checker = Checker(TransactionResolution.COMMIT)
    producer = clients.producer(checker)
    consumer = clients.consumer("tx-check-group")
    body = b"orphan-" + uuid.uuid4().hex.encode()
    tx = producer.begin_transaction()
    receipt = producer.send(message(body, {"k": "v"}), tx)
    # Neither commit nor rollback: the broker asks the producer after ~1 s.
    got = receive_until(consumer, {body}, timeout=20)
    assert [bytes(m.body) for m in got] == [body]
    assert wait_until(lambda: len(checker.asked) >= 1)
    asked = checker.asked[0]
    assert asked.topic == TOPIC
    assert asked.message_id == receipt.message_id
    assert bytes(asked.body) == body
    assert asked.properties.get("k") == "v"
    # Resolved by the check-back: not asked again.
    time.sleep(2.5)
    assert len(checker.asked) == 1


def test_check_back_rollback_discards(clients):
    checker = Checker(TransactionResolution.ROLLBACK)
    producer = clients.producer(checker)
    consumer = clients.consumer("tx-check-rollback-group")
    body = b"orphan-rb-" + uuid.uuid4().hex.encode()
    producer.send(message(body), producer.begin_transaction())
    assert wait_until(lambda: len(checker.asked) >= 1, timeout=20)
    assert body not in receive_bodies(consumer, 3)
    assert len(checker.asked) == 1


def test_open_transactions_survive_a_broker_crash(broker, clients):
    # The first producer sends half messages and goes away without resolving them.
    # Its checker does not know yet (UNSPECIFIED, "unknown"): that leaves a transaction open.
    quiet = Checker(TransactionResolution.TRANSACTION_RESOLUTION_UNSPECIFIED)
    first = clients.producer(quiet)
    bodies = {b"crash-%d-" % i + uuid.uuid4().hex.encode() for i in range(3)}
    for body in bodies:
        first.send(message(body), first.begin_transaction())
    clients.close()
    broker.kill()
    broker.start()
    # After the restart the half messages are open again; a new producer's checker commits them.
    fresh = Clients(broker.endpoint)
    try:
        checker = Checker(TransactionResolution.COMMIT)
        fresh.producer(checker)
        consumer = fresh.consumer("tx-crash-group")
        got = receive_until(consumer, bodies, timeout=25)
        received = [bytes(m.body) for m in got]
        assert sorted(received) == sorted(bodies), "each committed exactly once"
        assert {bytes(m.body) for m in checker.asked} == bodies
    finally:
        fresh.close()


@pytest.fixture
def stub(broker):
    channel = grpc.insecure_channel(broker.endpoint)
    yield service_pb2_grpc.MessagingServiceStub(channel)
    channel.close()


def half(stub, body=b"raw"):
    sp = d.SystemProperties(message_id=uuid.uuid4().hex, message_type=d.TRANSACTION, body_encoding=d.IDENTITY)
    m = d.Message(topic=d.Resource(name=TOPIC), system_properties=sp, body=body)
    response = stub.SendMessage(s.SendMessageRequest(messages=[m]), metadata=META, timeout=10)
    assert response.status.code == d.OK, response.status
    return m.system_properties.message_id, response.entries[0].transaction_id


def end(stub, message_id, transaction_id, resolution=d.COMMIT, topic=TOPIC):
    request = s.EndTransactionRequest(
        topic=d.Resource(name=topic), message_id=message_id, transaction_id=transaction_id,
        resolution=resolution, source=d.SOURCE_CLIENT)
    return stub.EndTransaction(request, metadata=META, timeout=10).status


def open_transactions(broker):
    out = subprocess.run([binary("mqadmin"), "brokerStatus", "-b", broker.endpoint, "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return int(json.loads(out.stdout)[0]["openTransactions"])


def test_end_transaction_bad_input(broker, stub):
    message_id, transaction_id = half(stub)
    assert open_transactions(broker) == 1
    assert end(stub, message_id, "not-a-transaction").code == d.INVALID_TRANSACTION_ID
    # An id is found by the offset it carries (its address part may be stale: the broker may
    # have moved since); an offset with no half message of this id there is refused.
    assert end(stub, message_id, "0" * 16 + "0000000100000000").code == d.INVALID_TRANSACTION_ID
    assert end(stub, "someone-else", transaction_id).code == d.INVALID_TRANSACTION_ID
    assert end(stub, message_id, transaction_id, topic="plain").code == d.INVALID_TRANSACTION_ID
    assert end(stub, message_id, transaction_id, resolution=d.TRANSACTION_RESOLUTION_UNSPECIFIED).code == d.BAD_REQUEST
    assert end(stub, message_id, "").code == d.INVALID_TRANSACTION_ID
    # None of that resolved it; now it ends once, a repeat is answered OK, the opposite refused.
    assert end(stub, message_id, transaction_id).code == d.OK
    assert end(stub, message_id, transaction_id).code == d.OK
    assert end(stub, message_id, transaction_id, resolution=d.ROLLBACK).code == d.INVALID_TRANSACTION_ID
    assert open_transactions(broker) == 0


def test_transaction_message_to_a_normal_topic_is_refused(stub):
    sp = d.SystemProperties(message_id=uuid.uuid4().hex, message_type=d.TRANSACTION, body_encoding=d.IDENTITY)
    m = d.Message(topic=d.Resource(name="plain"), system_properties=sp, body=b"x")
    response = stub.SendMessage(s.SendMessageRequest(messages=[m]), metadata=META, timeout=10)
    assert response.status.code == d.MESSAGE_PROPERTY_CONFLICT_WITH_TYPE
