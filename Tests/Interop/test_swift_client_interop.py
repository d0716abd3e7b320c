"""Cross-language checks of the Swift client (Sources/RocketMQClient, driven through the
`rocketmq-client-demo` executable) against the official RocketMQ 5 Python client, both talking
to a real `mqbroker`: what one side sends, the other receives with the same bodies, tags, keys
and properties. Also a 10k-cycle send/receive leak check of the Swift client."""
import json
import subprocess
import time
import uuid

from rocketmq import ClientConfiguration, Credentials, FilterExpression, Message, Producer, SimpleConsumer

from conftest import binary

BROKER_CONFIG = {"autoCreate": True}


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def demo(*args, timeout=120):
    """Runs rocketmq-client-demo; returns its JSON output lines."""
    result = subprocess.run([binary("rocketmq-client-demo"), *args], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"rocketmq-client-demo {' '.join(args)} failed:\n{result.stdout}\n{result.stderr[-4000:]}"
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def python_config(broker):
    return ClientConfiguration(broker.endpoint, Credentials(), request_timeout=10)


def test_swift_producer_to_python_consumer_keeps_bodies_tags_keys_and_properties(broker_factory):
    broker = broker_factory(BROKER_CONFIG)
    topic, group = unique("swift-to-py"), unique("py-group")
    sent = demo("produce", "--endpoint", broker.endpoint, "--topic", topic, "--count", "10", "--prefix", "sw", "--tag", "fromswift")
    assert len(sent) == 10
    consumer = SimpleConsumer(python_config(broker), group, {topic: FilterExpression("fromswift")}, await_duration=2)
    consumer.startup()
    try:
        got = {}
        deadline = time.monotonic() + 30
        while len(got) < 10 and time.monotonic() < deadline:
            for m in consumer.receive(32, 20):
                got[m.message_id] = m
                consumer.ack(m)
    finally:
        consumer.shutdown()
    assert set(got) == {line["sent"] for line in sent}, "message ids differ between the Swift receipts and Python"
    by_body = {m.body: m for m in got.values()}
    assert set(by_body) == {f"sw-{i}".encode() for i in range(10)}
    m = by_body[b"sw-4"]
    assert m.tag == "fromswift"
    assert set(m.keys) == {"key-4"}
    assert m.properties == {"index": "4", "origin": "swift"}


def test_python_consumer_reads_bodies_the_swift_producer_gzip_compressed(broker_factory):
    broker = broker_factory(BROKER_CONFIG)
    topic, group = unique("swift-gzip"), unique("py-group")
    demo("produce", "--endpoint", broker.endpoint, "--topic", topic, "--count", "3", "--prefix", "big", "--pad", "20000")
    consumer = SimpleConsumer(python_config(broker), group, {topic: FilterExpression("*")}, await_duration=2)
    consumer.startup()
    try:
        bodies = []
        deadline = time.monotonic() + 30
        while len(bodies) < 3 and time.monotonic() < deadline:
            for m in consumer.receive(32, 20):
                bodies.append(m.body)
                consumer.ack(m)
    finally:
        consumer.shutdown()
    assert sorted(bodies) == [f"big-{i}".encode() + b"x" * 20000 for i in range(3)]


def test_python_producer_to_swift_consumer_keeps_bodies_tags_keys_and_properties(broker_factory):
    broker = broker_factory(BROKER_CONFIG)
    topic, group = unique("py-to-swift"), unique("swift-group")
    producer = Producer(python_config(broker), (topic,))
    producer.startup()
    ids = {}
    try:
        for i in range(10):
            m = Message()
            m.topic = topic
            m.body = f"py-{i}".encode()
            m.tag = "frompython"
            m.keys = f"pk-{i}"
            m.add_property("index", str(i))
            m.add_property("origin", "python")
            ids[producer.send(m).message_id] = i
    finally:
        producer.shutdown()
    lines = demo("consume", "--endpoint", broker.endpoint, "--topic", topic, "--group", group, "--count", "10", "--timeout", "30")
    assert {line["id"] for line in lines} == set(ids)
    for line in lines:
        i = ids[line["id"]]
        assert line["body"] == f"py-{i}"
        assert line["tag"] == "frompython"
        assert line["keys"] == [f"pk-{i}"]
        assert line["properties"] == {"index": str(i), "origin": "python"}


def test_ten_thousand_send_receive_cycles_keep_the_swift_clients_memory_flat(broker_factory):
    broker = broker_factory(BROKER_CONFIG)
    [report] = demo("leak", "--endpoint", broker.endpoint, "--topic", unique("leak"), "--group", unique("leak-group"),
                    "--cycles", "10000", "--warmup", "1000", timeout=300)
    assert report["cycles"] == 10000
    assert report["rss_before_kib"] > 0
    growth = report["rss_after_kib"] - report["rss_before_kib"]
    # Generous: a per-cycle leak of even 1 KiB would show as ~10 MiB.
    assert growth < 8 * 1024, f"RSS grew by {growth} KiB over 10k cycles: {report}"
