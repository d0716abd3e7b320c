"""`mqbroker --metrics-port`: the broker's Prometheus endpoint, read by the official Prometheus
Python client's parser (prometheus-client, nobody here wrote it) after traffic from the official
RocketMQ 5 Python client."""
import re
import urllib.error
import urllib.request
import uuid

import grpc
from prometheus_client.parser import text_string_to_metric_families
from rocketmq.grpc_protocol import definition_pb2 as d, service_pb2 as s, service_pb2_grpc
from test_rocketmq_client import Clients, message, receive_exactly, unique

CONFIG = {
    "flushMode": "sync",
    "autoCreate": True,
    "topics": [{"name": "metered", "queueCount": 2, "permission": 6, "messageTypes": ["NORMAL"]}],
}


def scrape(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {}
    for family in families.values():
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return families, samples


def test_topics_groups_and_group_commit_after_real_traffic(broker_factory):
    broker = broker_factory(CONFIG, extra=["--metrics-port", "0"])
    url = broker.process.wait_for(r"metrics listening on (http://\S+)").group(1)
    clients = Clients(broker.endpoint)
    group = unique("metrics-group")
    try:
        producer = clients.producer("metered")
        for i in range(10):
            producer.send(message("metered", f"m{i}".encode()))
        consumer = clients.simple(group, "metered")
        assert len(receive_exactly(consumer, 4)) == 4
    finally:
        clients.close()

    families, samples = scrape(url)
    assert families["rocketmq_messages_in"].type == "counter"
    assert samples[("rocketmq_messages_in_total", (("topic", "metered"),))] == 10
    # Acked messages are prefixes of their queues (a queue hands out in offset order), so the
    # other six are the lag; none is in flight.
    labels = (("consumer_group", group), ("topic", "metered"))
    assert families["rocketmq_consumer_lag_messages"].type == "gauge"
    assert samples[("rocketmq_consumer_lag_messages", labels)] == 6
    assert samples[("rocketmq_consumer_inflight_messages", labels)] == 0
    # Sync flush: every send (and each consumer-progress record) was acknowledged by a group commit.
    assert samples[("rocketmq_storage_group_commit_appends_total", ())] >= 10
    assert 1 <= samples[("rocketmq_storage_flushes_total", ())] <= samples[("rocketmq_storage_group_commit_appends_total", ())]
    assert samples[("rocketmq_storage_flush_behind_bytes", ())] == 0
    assert samples[("rocketmq_broker_info", (("broker", "broker-a"), ("cluster", "DefaultCluster"), ("flush_mode", "sync")))] == 1
    assert samples[("process_resident_memory_bytes", ())] > 1 << 20

    try:
        urllib.request.urlopen(url.replace("/metrics", "/other"), timeout=10)
        raise AssertionError("only /metrics is served")
    except urllib.error.HTTPError as error:
        assert error.code == 404


def test_a_metrics_port_already_taken_stops_the_broker_with_a_reason(broker_factory, tmp_path):
    first = broker_factory(CONFIG, extra=["--metrics-port", "0"])
    port = re.search(r":(\d+)/metrics", first.process.wait_for(r"metrics listening on (\S+)").group(1)).group(1)
    from conftest import Process, binary, free_port
    second = Process([binary("mqbroker"), "--data", str(tmp_path / "second"), "--port", str(free_port()),
                      "--metrics-port", port], "mqbroker-second")
    try:
        second.proc.wait(timeout=30)
    except Exception:
        second.stop()
        raise AssertionError("a broker whose metrics port is taken kept running:\n" + second.output()[-2000:])
    assert second.proc.returncode != 0
    assert re.search(r"(?i)address already in use", second.output()), second.output()[-2000:]
    assert f"metrics port {port}" in second.output(), second.output()[-2000:]
    # It closed its store cleanly: the next start on that directory needs no crash recovery.
    third = Process([binary("mqbroker"), "--data", str(tmp_path / "second"), "--port", str(free_port())], "mqbroker-third")
    try:
        third.wait_for(r"mqbroker listening on")
        assert re.search(r"clean=true", third.output()), third.output()[-2000:]
    finally:
        third.stop()


def test_a_batch_is_flushed_together_not_message_by_message(broker_factory):
    # RocketMQ writes a batch as one: a sync-flush broker appends a batch's messages in order
    # and waits for them together, so a few group commits cover it (one per message, one after
    # the other, made a batch of 32 take 32 flushes).
    broker = broker_factory(CONFIG, extra=["--metrics-port", "0"])
    url = broker.process.wait_for(r"metrics listening on (http://\S+)").group(1)
    stub = service_pb2_grpc.MessagingServiceStub(grpc.insecure_channel(broker.endpoint))

    def batch(count):
        messages = [d.Message(topic=d.Resource(name="metered"), body=b"x" * 1024, system_properties=d.SystemProperties(
            message_id=uuid.uuid4().hex, message_type=d.NORMAL, body_encoding=d.IDENTITY)) for _ in range(count)]
        answer = stub.SendMessage(s.SendMessageRequest(messages=messages), metadata=(("x-mq-client-id", "pytest-batch"),), timeout=30)
        assert answer.status.code == d.OK and len(answer.entries) == count, answer.status
        return [e.offset for e in answer.entries]

    batch(1)
    for _ in range(3):
        _, before = scrape(url)
        offsets = batch(32)
        _, after = scrape(url)
        assert offsets == list(range(offsets[0], offsets[0] + 32)), "one queue, in order"
        appended = after[("rocketmq_storage_group_commit_appends_total", ())] - before[("rocketmq_storage_group_commit_appends_total", ())]
        flushes = after[("rocketmq_storage_flushes_total", ())] - before[("rocketmq_storage_flushes_total", ())]
        assert appended == 32
        assert flushes <= 2, f"{flushes:.0f} flushes for one batch of 32"
