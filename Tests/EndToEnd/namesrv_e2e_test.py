"""End-to-end: real `mqnamesrv` processes, driven by grpcio (an independent gRPC peer) with stubs
compiled from our Protos/ at test time.

Run: ROCKETMQ_BIN=$(swift build --show-bin-path) .venv/bin/python -m pytest -q Tests/EndToEnd/namesrv_e2e_test.py
Every process listens on 127.0.0.1 with an ephemeral port and is killed at the end; every wait is bounded.
"""
import importlib
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

import grpc
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROTOS = os.path.join(ROOT, "Protos")
CLIENT_ID = (("x-mq-client-id", "e2e-client"),)


@pytest.fixture(scope="module")
def pb():
    """Python stubs for apache.rocketmq.v2 and rocketmq.namesrv.v1, generated into a temp dir.

    The .proto files are copied under `nse2e/` (imports rewritten to match) because the test venv may
    hold rocketmq-python-client, whose `rocketmq` package would shadow ours and register the same
    apache.rocketmq.v2 symbols; the proto packages, and so the method paths on the wire, are unchanged.
    """
    from grpc_tools import protoc
    import grpc_tools

    out = tempfile.mkdtemp(prefix="namesrv-e2e-py-")
    files = [
        "apache/rocketmq/v2/definition.proto",
        "apache/rocketmq/v2/service.proto",
        "rocketmq/namesrv/v1/namesrv.proto",
    ]
    for name in files:
        with open(os.path.join(PROTOS, name)) as f:
            text = f.read().replace('import "apache/', 'import "nse2e/apache/')
        target = os.path.join(out, "nse2e", name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as f:
            f.write(text)
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    args = ["protoc", f"-I{out}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}"]
    assert protoc.main(args + ["nse2e/" + name for name in files]) == 0, "grpc_tools.protoc failed"
    sys.path.insert(0, out)
    try:
        modules = {
            "definition": importlib.import_module("nse2e.apache.rocketmq.v2.definition_pb2"),
            "service": importlib.import_module("nse2e.apache.rocketmq.v2.service_pb2"),
            "service_grpc": importlib.import_module("nse2e.apache.rocketmq.v2.service_pb2_grpc"),
            "namesrv": importlib.import_module("nse2e.rocketmq.namesrv.v1.namesrv_pb2"),
            "namesrv_grpc": importlib.import_module("nse2e.rocketmq.namesrv.v1.namesrv_pb2_grpc"),
        }
    finally:
        sys.path.remove(out)
    return type("PB", (), modules)


class NameServerProcess:
    """One `mqnamesrv`; the port comes from its `mqnamesrv listening on HOST:PORT` line."""

    def __init__(self, *args):
        folder = os.environ.get("ROCKETMQ_BIN") or os.path.join(ROOT, ".build", "debug")
        path = os.path.join(folder, "mqnamesrv")
        if not os.path.exists(path):
            pytest.fail(f"{path} is missing: build first")
        self.log = tempfile.NamedTemporaryFile(prefix="mqnamesrv-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([path, "--port", "0", *args], stdout=subprocess.PIPE, stderr=self.log, text=True)
        lines = queue.Queue()
        threading.Thread(target=lambda: lines.put(self.proc.stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=30)
        except queue.Empty:
            self.stop()
            pytest.fail("mqnamesrv printed nothing within 30 s")
        match = re.match(r"mqnamesrv listening on 127\.0\.0\.1:(\d+)$", line.strip())
        assert match, f"unexpected first line {line!r}"
        self.address = f"127.0.0.1:{match.group(1)}"
        self.channel = grpc.insecure_channel(self.address)

    def stop(self):
        if hasattr(self, "channel"):
            self.channel.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def nameservers():
    started = []

    def start(*args):
        process = NameServerProcess(*args)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


class Broker:
    """A fake broker: one RegisterBroker stream, messages pushed through a queue, acks collected."""

    def __init__(self, pb, channel, registration):
        self.pb = pb
        self.outbox = queue.Queue()
        self.acks = queue.Queue()
        self.outbox.put(pb.namesrv.RegisterBrokerRequest(registration=registration))
        stub = pb.namesrv_grpc.NameServerStub(channel)
        self.call = stub.RegisterBroker(iter(self.outbox.get, None))
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        try:
            for ack in self.call:
                self.acks.put(ack)
        except grpc.RpcError:
            pass

    def next_ack(self):
        return self.acks.get(timeout=10)

    def heartbeat(self):
        self.outbox.put(self.pb.namesrv.RegisterBrokerRequest(heartbeat=self.pb.namesrv.BrokerHeartbeat()))

    def close(self):
        """Half-closes the stream, as a broker shutting down does."""
        self.outbox.put(None)

    def cancel(self):
        self.call.cancel()


def registration(pb, topic="orders", queues=4):
    d = pb.definition
    return pb.namesrv.BrokerRegistration(
        cluster_name="DefaultCluster",
        broker_name="broker-a",
        broker_id=0,
        endpoints=["127.0.0.1:10911"],
        topics=[pb.namesrv.TopicRoute(name=topic, queue_count=queues, permission=6, message_types=[d.NORMAL, d.FIFO])],
    )


def query_route(pb, channel, topic, metadata=CLIENT_ID):
    stub = pb.service_grpc.MessagingServiceStub(channel)
    request = pb.service.QueryRouteRequest(topic=pb.definition.Resource(name=topic))
    return stub.QueryRoute(request, metadata=metadata, timeout=5)


def eventually(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_registered_routes_are_served_by_every_nameserver_and_vanish_when_the_stream_ends(pb, nameservers):
    first, second = nameservers(), nameservers()
    brokers = [Broker(pb, ns.channel, registration(pb)) for ns in (first, second)]
    for broker in brokers:
        ack = broker.next_ack()
        assert ack.sequence == 1 and ack.registered and ack.broker_expiry.seconds == 120

    for ns in (first, second):
        route = query_route(pb, ns.channel, "orders")
        assert route.status.code == pb.definition.OK
        assert [q.id for q in route.message_queues] == [0, 1, 2, 3]
        queue0 = route.message_queues[0]
        assert queue0.permission == pb.definition.READ_WRITE
        assert list(queue0.accept_message_types) == [pb.definition.NORMAL, pb.definition.FIFO]
        assert queue0.broker.name == "broker-a"
        assert queue0.broker.endpoints.scheme == pb.definition.IPv4
        assert [(a.host, a.port) for a in queue0.broker.endpoints.addresses] == [("127.0.0.1", 10911)]

    brokers[0].heartbeat()
    assert brokers[0].next_ack().sequence == 2

    # Ending one stream unregisters the broker on that NameServer only, at once.
    brokers[0].close()
    assert eventually(lambda: query_route(pb, first.channel, "orders").status.code == pb.definition.TOPIC_NOT_FOUND, timeout=1)
    assert query_route(pb, second.channel, "orders").status.code == pb.definition.OK
    # A dropped stream (cancelled) does the same.
    brokers[1].cancel()
    assert eventually(lambda: query_route(pb, second.channel, "orders").status.code == pb.definition.TOPIC_NOT_FOUND, timeout=1)


def test_query_route_needs_a_client_id_and_reports_unknown_topics(pb, nameservers):
    ns = nameservers()
    assert query_route(pb, ns.channel, "orders", metadata=()).status.code == pb.definition.CLIENT_ID_REQUIRED
    unknown = query_route(pb, ns.channel, "nope", metadata=CLIENT_ID + (("authorization", "MQv2-HMAC-SHA1 Credential=x"),))
    assert unknown.status.code == pb.definition.TOPIC_NOT_FOUND


def test_a_silent_broker_expires(pb, nameservers):
    ns = nameservers("--broker-expiry", "1")
    broker = Broker(pb, ns.channel, registration(pb))
    assert broker.next_ack().broker_expiry.seconds == 1
    assert query_route(pb, ns.channel, "orders").status.code == pb.definition.OK
    started = time.monotonic()
    assert eventually(lambda: query_route(pb, ns.channel, "orders").status.code == pb.definition.TOPIC_NOT_FOUND, timeout=4)
    assert time.monotonic() - started > 0.5
    broker.cancel()


def test_cluster_info_and_sigterm(pb, nameservers):
    ns = nameservers()
    broker = Broker(pb, ns.channel, registration(pb))
    broker.next_ack()
    admin = pb.namesrv_grpc.NameServerStub(ns.channel)
    clusters = admin.GetClusterInfo(pb.namesrv.GetClusterInfoRequest(), timeout=5).clusters
    assert [c.name for c in clusters] == ["DefaultCluster"]
    [info] = clusters[0].brokers
    assert (info.broker_name, info.broker_id, info.role, info.topic_count) == ("broker-a", 0, pb.namesrv.MASTER, 1)
    assert list(admin.ListTopics(pb.namesrv.ListTopicsRequest(), timeout=5).topics) == ["orders"]

    ns.proc.send_signal(signal.SIGTERM)
    assert ns.proc.wait(timeout=15) == 0


def test_health_and_reflection(nameservers):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    ns = nameservers()
    health = health_pb2_grpc.HealthStub(ns.channel)
    for service in ("", "rocketmq.namesrv.v1.NameServer", "apache.rocketmq.v2.MessagingService"):
        assert health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status == health_pb2.HealthCheckResponse.SERVING
    services = set(ProtoReflectionDescriptorDatabase(ns.channel).get_services())
    assert {"rocketmq.namesrv.v1.NameServer", "apache.rocketmq.v2.MessagingService", "grpc.health.v1.Health"} <= services
