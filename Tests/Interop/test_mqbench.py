"""mqbench against a real broker (and its in-process --dev one): the checker reports nothing
lost, duplicated or out of order; topics, queues, durations and the summary's figures are
what was asked."""
import json
import subprocess
import time

import grpc
import pytest

from rocketmq import ClientConfiguration, Credentials, Message, Producer

from conftest import binary
from test_broker_admin import admin_pb  # noqa: F401 (a fixture)

TOKEN = "bench-admin-token"


def run(args, timeout=120, ok=True):
    out = subprocess.run([binary("mqbench")] + args + ["--json"], capture_output=True, text=True, timeout=timeout)
    if not ok:
        return out
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_produce_then_consume_counts_every_message_once(broker_factory):
    broker = broker_factory({"autoCreate": True, "flushMode": "sync"})
    produced = run(["produce", "--endpoint", broker.endpoint, "--topic", "bench-a", "--count", "1500", "--concurrency", "8", "--mode", "async"])
    assert produced["count"] == 1500 and produced["errors"] == {}
    assert produced["p99_us"] >= produced["p50_us"] > 0
    assert produced["mb_per_s"] == pytest.approx(produced["rate"] * 1024 / 1e6, abs=0.01)
    consumed = run(["consume", "--endpoint", broker.endpoint, "--topic", "bench-a", "--count", "1500", "--concurrency", "4", "--idle-seconds", "3"])
    assert (consumed["unique"], consumed["lost"], consumed["duplicated"]) == (1500, 0, 0)


def test_produce_through_the_producer_api_stores_every_message_once(broker_factory):
    broker = broker_factory({"autoCreate": True})
    produced = run(["produce", "--endpoint", broker.endpoint, "--topic", "bench-api", "--count", "900", "--concurrency", "6",
                    "--mode", "async", "--in-flight", "4", "--api", "producer"])
    assert (produced["count"], produced["errors"], produced["api"], produced["scenario"]) == (900, {}, "producer", "produce-async-producer")
    assert produced["p99_us"] >= produced["p50_us"] > 0
    consumed = run(["consume", "--endpoint", broker.endpoint, "--topic", "bench-api", "--count", "900", "--concurrency", "4", "--idle-seconds", "3"])
    assert (consumed["unique"], consumed["lost"], consumed["duplicated"]) == (900, 0, 0)
    refused = run(["produce", "--endpoint", broker.endpoint, "--api", "producer", "--mode", "oneway", "--count", "10"], ok=False)
    assert refused.returncode != 0 and "--mode oneway is for --api raw" in refused.stderr, refused.stderr[-2000:]


def test_e2e_keeps_fifo_order_per_message_group(broker_factory):
    broker = broker_factory({"autoCreate": True})
    result = run(["e2e", "--endpoint", broker.endpoint, "--topic", "bench-fifo", "--group", "bench-fifo-group",
                  "--count", "800", "--concurrency", "4", "--fifo-groups", "4"])
    assert (result["lost"], result["duplicated"], result["out_of_order"]) == (0, 0, 0)
    assert result["unique"] == 800
    # How busy the machine was, and what the client itself cost: client and broker share it.
    assert 0 < result["host_busy_percent"] <= 100 and 0 <= result["host_steal_percent"] <= 100
    assert result["client_cpu_seconds"] > 0


def test_the_checker_counts_duplicates_and_order_per_sender_within_a_group(broker_factory):
    """Order is per message group and sender: two senders sharing a group interleave without
    being out of order, a sender's number below its highest so far is, and an id seen before is a
    duplicate. The messages are sent by the official client, in this order, to one group."""
    broker = broker_factory({"autoCreate": True})
    producer = Producer(ClientConfiguration(broker.endpoint, Credentials(), request_timeout=10), ("bench-order",))
    producer.startup()
    try:
        for bench_id in ["1-5", "0-0", "0-1", "1-6", "0-3", "0-2", "0-2"]:
            m = Message()
            m.topic, m.body, m.message_group = "bench-order", b"x", "g0"
            m.add_property("bench-id", bench_id)
            producer.send(m)
    finally:
        producer.shutdown()
    checked = run(["consume", "--endpoint", broker.endpoint, "--topic", "bench-order", "--group", "bench-order-group",
                   "--fifo-groups", "1", "--concurrency", "8", "--count", "7", "--idle-seconds", "5"])
    # Sender 1's 5 and 6 do not make sender 0's 0, 1 and 3 late; sender 0's 2 after its 3 is,
    # twice, and the second 0-2 is also a duplicate.
    assert (checked["unique"], checked["duplicated"], checked["out_of_order"], checked["foreign"]) == (6, 1, 2, 0)


def test_produce_creates_the_topics_with_the_queues_asked_and_uses_every_queue(broker_factory, admin_pb):  # noqa: F811
    pb, pb_grpc = admin_pb
    broker = broker_factory({"autoCreate": False}, extra=["--admin-token", TOKEN])
    common = ["--endpoint", broker.endpoint, "--topic", "spread", "--topics", "2", "--queues", "3", "--concurrency", "6"]
    refused = run(["produce"] + common + ["--count", "10"], ok=False)
    assert refused.returncode != 0 and "UNAUTHENTICATED" in refused.stderr, refused.stderr[-2000:]
    produced = run(["produce"] + common + ["--count", "1200", "--admin-token", TOKEN])
    assert (produced["count"], produced["errors"], produced["topics"], produced["queues"]) == (1200, {}, 2, 6)
    with grpc.insecure_channel(broker.endpoint) as channel:
        stub = pb_grpc.AdminStub(channel)
        stored = 0
        for name in ("spread-0", "spread-1"):
            described = stub.DescribeTopic(pb.DescribeTopicRequest(topic=name), timeout=10)
            assert described.topic.queue_count == 3
            offsets = sorted(q.max_offset for q in described.queues)
            assert offsets == [200, 200, 200], (name, offsets)  # 3 senders per topic, each rotating over its 3 queues
            stored += sum(offsets)
    assert stored == 1200
    unknown_group = run(["consume"] + common[:6] + ["--count", "1200", "--concurrency", "4"], ok=False, timeout=30)
    assert unknown_group.returncode != 0 and "refused ReceiveMessage" in unknown_group.stderr, unknown_group.stderr[-2000:]
    with grpc.insecure_channel(broker.endpoint) as channel:
        pb_grpc.AdminStub(channel).UpsertGroup(pb.UpsertGroupRequest(group=pb.Group(name="mqbench-group", max_delivery_attempts=16, consume_enabled=True)),
                                               metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=10)
    consumed = run(["consume"] + common[:6] + ["--count", "1200", "--concurrency", "4", "--idle-seconds", "3"])
    assert (consumed["unique"], consumed["lost"], consumed["duplicated"], consumed["topics"]) == (1200, 0, 0, 2)


def test_dev_and_duration_need_no_cluster_and_check_what_was_acknowledged():
    began = time.monotonic()
    produced = run(["produce", "--dev", "--flush", "sync", "--duration", "1.5", "--concurrency", "4", "--size", "512"])
    assert 1.5 <= produced["seconds"] < 15 and produced["count"] > 0 and produced["errors"] == {}
    assert produced["size"] == 512 and produced["process_cpu_seconds"] > 0 and produced["process_rss_mib"] > 0
    assert "broker_cpu_seconds" not in produced  # one process: its figures are not the broker's alone
    e2e = run(["e2e", "--dev", "--duration", "1.5", "--topics", "2", "--concurrency", "4", "--rate", "400"])
    assert e2e["sent"] > 0 and e2e["send_errors"] == {}
    assert 300 <= e2e["send_rate"] <= 500, e2e["send_rate"]  # paced to the offered rate
    assert (e2e["unique"], e2e["lost"], e2e["duplicated"]) == (e2e["sent"], 0, 0)
    # A coarse pacing tick releases sends in bursts, one per 100 ms, still at the offered rate.
    ticked = run(["e2e", "--dev", "--duration", "1.5", "--concurrency", "4", "--rate", "400", "--tick-ms", "100", "--warmup", "0.75"])
    assert 300 <= ticked["send_rate"] <= 500, ticked["send_rate"]
    assert (ticked["unique"], ticked["lost"], ticked["duplicated"]) == (ticked["sent"], 0, 0)
    # Messages born in the warm-up count in the totals, not in the steady_* figures: about the
    # second half of this run (its start-up also falls in the warm-up).
    assert 0.1 * ticked["sent"] < ticked["steady_count"] < 0.8 * ticked["sent"], (ticked["steady_count"], ticked["sent"])
    assert 0 <= ticked["steady_p50_us"] <= ticked["steady_p99_us"] <= ticked["steady_max_us"] <= ticked["max_us"] * 1.01 + 1
    assert "steady_count" not in e2e
    # Where the steady messages' latency went, phase by phase (born → stored → delivered →
    # received): every steady message is split, and no phase is longer than the whole (the
    # stored mark is only as fine as its millisecond).
    assert ticked["phase_count"] == ticked["steady_count"]
    for phase in ("stored", "waited", "travelled"):
        p50, p99, top = (ticked[f"phase_{phase}_{q}_us"] for q in ("p50", "p99", "max"))
        assert 0 <= p50 <= p99 <= top <= ticked["steady_max_us"] * 1.01 + 1000, (phase, p50, p99, top)
    assert ticked["phase_travelled_max_us"] > 0 and ticked["phase_waited_max_us"] > 0
    assert time.monotonic() - began < 90


def test_consume_for_a_duration_stops_then_with_what_it_has(broker_factory):
    broker = broker_factory({"autoCreate": True})
    produced = run(["produce", "--endpoint", broker.endpoint, "--topic", "bench-d", "--count", "300", "--concurrency", "4"])
    assert produced["count"] == 300
    began = time.monotonic()
    # More expected than exists and a long idle limit: only the duration can end the run.
    consumed = run(["consume", "--endpoint", broker.endpoint, "--topic", "bench-d", "--count", "100000", "--concurrency", "4",
                    "--duration", "2", "--idle-seconds", "60"])
    took = time.monotonic() - began
    assert 2 <= took < 20, took
    assert (consumed["unique"], consumed["duplicated"]) == (300, 0)
    assert consumed["lost"] == 100000 - 300  # what was expected and never came


@pytest.mark.parametrize("args, complaint", [
    (["produce", "--dev", "--mode", "sometimes"], "--mode"),
    (["produce", "--dev", "--flush", "never"], "--flush"),
    (["produce", "--dev", "--queues", "0"], "--queues"),
    (["consume", "--dev", "--topics", "4", "--concurrency", "2"], "--topics"),
    (["produce", "--data", "/tmp/x"], "--dev"),
    (["e2e", "--dev", "--rate", "100", "--tick-ms", "-1"], "--tick-ms"),
    (["e2e", "--dev", "--rate", "100", "--warmup", "-1"], "--warmup"),
])
def test_bad_options_are_refused_before_anything_runs(args, complaint):
    out = run(args, ok=False, timeout=30)
    assert out.returncode != 0 and complaint in out.stderr, out.stderr[-2000:]
