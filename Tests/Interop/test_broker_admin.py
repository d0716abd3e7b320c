"""The broker's rocketmq.admin.v1.Admin service on a real mqbroker, called with grpcio stubs
compiled from our Protos/ at test time; messages come from the official Python client."""
import os
import sys
import tempfile
import time
import uuid

import grpc
import pytest
from google.protobuf import timestamp_pb2
from rocketmq import ClientConfiguration, Credentials, Message, Producer, SimpleConsumer, FilterExpression

from conftest import PROTOS
from test_rocketmq_client import receive_exactly

TOKEN = "s3cret-admin-token"


@pytest.fixture(scope="module")
def admin_pb():
    """admin.proto compiled under its own Python package (the proto package stays rocketmq.admin.v1)."""
    from grpc_tools import protoc
    import grpc_tools
    out = tempfile.mkdtemp(prefix="admin-py-")
    src = os.path.join(out, "src", "rmq_admin")
    os.makedirs(src)
    with open(os.path.join(PROTOS, "rocketmq", "admin", "v1", "admin.proto")) as f:
        open(os.path.join(src, "admin.proto"), "w").write(f.read())
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    assert protoc.main(["protoc", f"-I{os.path.join(out, 'src')}", f"-I{include}", f"--python_out={out}",
                        f"--grpc_python_out={out}", "rmq_admin/admin.proto"]) == 0
    sys.path.insert(0, out)
    from rmq_admin import admin_pb2, admin_pb2_grpc
    return admin_pb2, admin_pb2_grpc


@pytest.fixture
def admin(broker_factory, admin_pb):
    pb, pb_grpc = admin_pb
    broker = broker_factory({"flushMode": "sync", "autoCreate": False}, extra=["--admin-token", TOKEN])
    channel = grpc.insecure_channel(broker.endpoint)
    yield pb, pb_grpc.AdminStub(channel), broker
    channel.close()


AUTH = (("authorization", f"Bearer {TOKEN}"),)


def test_state_changes_need_the_admin_token(admin):
    pb, stub, _ = admin
    topic = pb.Topic(name="guarded", queue_count=2, permission=6, message_types=["NORMAL"])
    with pytest.raises(grpc.RpcError) as error:
        stub.UpsertTopic(pb.UpsertTopicRequest(topic=topic), timeout=10)
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as wrong:
        stub.UpsertTopic(pb.UpsertTopicRequest(topic=topic), metadata=(("authorization", "Bearer nope"),), timeout=10)
    assert wrong.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert stub.UpsertTopic(pb.UpsertTopicRequest(topic=topic), metadata=AUTH, timeout=10).queue_count == 2
    # Reads stay open.
    assert "guarded" in [t.name for t in stub.ListTopics(pb.ListTopicsRequest(), timeout=10).topics]


def test_topic_and_group_lifecycle(admin):
    pb, stub, _ = admin
    stub.UpsertTopic(pb.UpsertTopicRequest(topic=pb.Topic(name="orders", queue_count=3, permission=6, message_types=["FIFO"])), metadata=AUTH, timeout=10)
    described = stub.DescribeTopic(pb.DescribeTopicRequest(topic="orders"), timeout=10)
    assert [q.queue_id for q in described.queues] == [0, 1, 2]
    assert list(described.topic.message_types) == ["FIFO"]
    with pytest.raises(grpc.RpcError) as bad:
        stub.UpsertTopic(pb.UpsertTopicRequest(topic=pb.Topic(name="bad name!", queue_count=1)), metadata=AUTH, timeout=10)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    stub.UpsertGroup(pb.UpsertGroupRequest(group=pb.Group(name="billing", max_delivery_attempts=5, fifo=True, consume_enabled=True)), metadata=AUTH, timeout=10)
    assert [(g.name, g.max_delivery_attempts, g.fifo) for g in stub.ListGroups(pb.ListGroupsRequest(), timeout=10).groups] == [("billing", 5, True)]
    stub.DeleteTopic(pb.DeleteTopicRequest(topic="orders"), metadata=AUTH, timeout=10)
    with pytest.raises(grpc.RpcError) as gone:
        stub.DescribeTopic(pb.DescribeTopicRequest(topic="orders"), timeout=10)
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    stub.DeleteGroup(pb.DeleteGroupRequest(group="billing"), metadata=AUTH, timeout=10)
    assert list(stub.ListGroups(pb.ListGroupsRequest(), timeout=10).groups) == []


def test_runtime_config_changes_apply_at_once_and_survive_a_restart(admin):
    pb, stub, broker = admin
    before = stub.GetBrokerConfig(pb.GetBrokerConfigRequest(), timeout=10)
    assert before.values["autoCreateTopics"] == "false" and before.values["adminAuth"] == "on"
    with pytest.raises(grpc.RpcError) as fixed:
        stub.UpdateBrokerConfig(pb.UpdateBrokerConfigRequest(values={"flushMode": "async"}), metadata=AUTH, timeout=10)
    assert fixed.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "restart" in fixed.value.details()
    with pytest.raises(grpc.RpcError) as invalid:
        stub.UpdateBrokerConfig(pb.UpdateBrokerConfigRequest(values={"maxBodySize": "-1"}), metadata=AUTH, timeout=10)
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    after = stub.UpdateBrokerConfig(pb.UpdateBrokerConfigRequest(values={"autoCreateTopics": "true"}), metadata=AUTH, timeout=10)
    assert after.values["autoCreateTopics"] == "true"

    # Visible at once: a producer can now use a topic nobody created.
    config = ClientConfiguration(broker.endpoint, Credentials(), request_timeout=10)
    producer = Producer(config, ("auto-made",))
    producer.startup()
    m = Message(); m.topic = "auto-made"; m.body = b"x"
    producer.send(m)
    producer.shutdown()

    broker.stop()
    broker.start()
    channel = grpc.insecure_channel(broker.endpoint)
    from rmq_admin import admin_pb2_grpc
    again = admin_pb2_grpc.AdminStub(channel).GetBrokerConfig(pb.GetBrokerConfigRequest(), timeout=10)
    channel.close()
    assert again.values["autoCreateTopics"] == "true"


def test_topics_and_groups_changed_at_runtime_survive_a_restart_with_the_same_config_file(broker_factory, admin_pb):
    # The config file seeds topics and groups; it does not undo what an operator changed since.
    pb, pb_grpc = admin_pb
    config = {"flushMode": "async", "autoCreate": False,
              "topics": [{"name": "payments", "queueCount": 4, "permission": 6, "messageTypes": ["FIFO"]},
                         {"name": "seeded-later", "queueCount": 2, "permission": 6, "messageTypes": ["NORMAL"]}],
              "groups": [{"name": "billing", "maxDeliveryAttempts": 16, "fifo": False, "consumeEnabled": True}]}
    broker = broker_factory(config, extra=["--admin-token", TOKEN])
    with grpc.insecure_channel(broker.endpoint) as channel:
        stub = pb_grpc.AdminStub(channel)
        stub.UpsertTopic(pb.UpsertTopicRequest(topic=pb.Topic(name="payments", queue_count=2, permission=4, message_types=["FIFO"])),
                         metadata=AUTH, timeout=10)
        stub.UpsertGroup(pb.UpsertGroupRequest(group=pb.Group(name="billing", max_delivery_attempts=3, consume_enabled=True)),
                         metadata=AUTH, timeout=10)
        stub.DeleteTopic(pb.DeleteTopicRequest(topic="seeded-later"), metadata=AUTH, timeout=10)
    broker.stop()
    broker.start()
    with grpc.insecure_channel(broker.endpoint) as channel:
        stub = pb_grpc.AdminStub(channel)
        topics = {t.name: t for t in stub.ListTopics(pb.ListTopicsRequest(), timeout=10).topics}
        groups = {g.name: g for g in stub.ListGroups(pb.ListGroupsRequest(), timeout=10).groups}
    assert (topics["payments"].queue_count, topics["payments"].permission) == (2, 4)
    assert groups["billing"].max_delivery_attempts == 3
    # A file topic the broker does not have (deleted since) is created again, as on a first start.
    assert topics["seeded-later"].queue_count == 2


def test_consumer_progress_reset_and_message_lookup(admin):
    pb, stub, broker = admin
    stub.UpsertTopic(pb.UpsertTopicRequest(topic=pb.Topic(name="events", queue_count=1, permission=6, message_types=["NORMAL"])), metadata=AUTH, timeout=10)
    stub.UpsertGroup(pb.UpsertGroupRequest(group=pb.Group(name="readers", max_delivery_attempts=16, consume_enabled=True)), metadata=AUTH, timeout=10)
    config = ClientConfiguration(broker.endpoint, Credentials(), request_timeout=10)
    producer = Producer(config, ("events",))
    producer.startup()
    ids = []
    for i in range(5):
        m = Message(); m.topic = "events"; m.body = f"e{i}".encode(); m.keys = f"key-{i}"
        ids.append(producer.send(m).message_id)
    producer.shutdown()

    consumer = SimpleConsumer(config, "readers", {"events": FilterExpression("*")}, await_duration=2)
    consumer.startup()
    got = receive_exactly(consumer, 3, timeout=20)
    progress = stub.GetConsumerProgress(pb.GetConsumerProgressRequest(group="readers"), timeout=10)
    [queue] = progress.queues
    assert (queue.broker_offset, queue.consumer_offset, queue.lag) == (5, 3, 2)

    epoch = timestamp_pb2.Timestamp(seconds=0)
    reset = stub.ResetOffset(pb.ResetOffsetRequest(group="readers", topic="events", timestamp=epoch), metadata=AUTH, timeout=10)
    assert [q.consumer_offset for q in reset.queues] == [0]
    bodies = []
    deadline = time.monotonic() + 20
    while len(bodies) < 5 and time.monotonic() < deadline:
        for m in consumer.receive(8, 30):
            consumer.ack(m)
            bodies.append(m.body)
    consumer.shutdown()
    assert sorted(bodies) == [f"e{i}".encode() for i in range(5)], "reset to the beginning redelivers everything"

    by_id = stub.QueryMessage(pb.QueryMessageRequest(message_id=ids[2]), timeout=10).messages
    assert [m.body for m in by_id] == [b"e2"]
    by_key = stub.QueryMessage(pb.QueryMessageRequest(key="key-4", topic="events"), timeout=10).messages
    assert [m.body for m in by_key] == [b"e4"]
    by_offset = stub.QueryMessage(pb.QueryMessageRequest(position=pb.QueuePosition(queue_id=0, offset=1), topic="events"), timeout=10).messages
    assert [m.body for m in by_offset] == [b"e1"]
    with pytest.raises(grpc.RpcError) as missing:
        stub.QueryMessage(pb.QueryMessageRequest(message_id=uuid.uuid4().hex), timeout=10)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_broker_status(admin):
    pb, stub, broker = admin
    status = stub.GetBrokerStatus(pb.GetBrokerStatusRequest(), timeout=10)
    assert status.broker_name == "broker-a" and status.address == broker.endpoint and status.flush_mode == "sync"


def test_the_broker_runs_on_jemalloc(admin):
    """The server executables link jemalloc ahead of libc (ServerAllocator); the broker checks that
    jemalloc serves its allocations and says so. Without the link, or behind libc, it says glibc."""
    _, _, broker = admin
    broker.process.wait_for(r"memory allocator: jemalloc \d+\.\d+", timeout=5)


def test_event_loops_and_page_cache_window_defaults_and_flags(broker_factory):
    """By default the broker serves gRPC on one event loop per core and keeps 1 GiB of CommitLog
    in the page cache behind the flushed position; --event-loops and --page-cache-window set them
    (and the broker still answers); zero or non-numeric event loops and a negative window are
    refused at start."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    default = broker_factory()
    default.process.wait_for(rf"serving gRPC on {os.cpu_count()} event loops", timeout=5)
    default.process.wait_for(r"CommitLog page-cache window: 1024 MiB", timeout=5)
    tuned = broker_factory(extra=("--event-loops", "1", "--page-cache-window", "0"))
    tuned.process.wait_for(r"serving gRPC on 1 event loops", timeout=5)
    tuned.process.wait_for(r"CommitLog page-cache window: off", timeout=5)
    with grpc.insecure_channel(tuned.endpoint) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    import subprocess
    from conftest import binary, free_port
    for extra, env, says in [
        (["--event-loops", "0"], {}, "event loops must be at least 1"),
        ([], {"ROCKETMQ_EVENT_LOOPS": "two"}, "ROCKETMQ_EVENT_LOOPS must be a number"),
        (["--page-cache-window=-5"], {}, "page-cache window must be 0 (off) or a positive number of MiB"),
    ]:
        with tempfile.TemporaryDirectory() as data:
            refused = subprocess.run([binary("mqbroker"), "--data", data, "--port", str(free_port()), *extra],
                                     capture_output=True, text=True, timeout=30, env={**os.environ, **env})
        assert refused.returncode != 0 and says in refused.stdout + refused.stderr, (extra, env, refused.stderr[-500:])


def test_dead_letters_are_listed_redriven_once_and_messages_resent(admin):
    pb, stub, broker = admin
    stub.UpsertTopic(pb.UpsertTopicRequest(topic=pb.Topic(name="jobs", queue_count=1, permission=6, message_types=["NORMAL"])), metadata=AUTH, timeout=10)
    stub.UpsertGroup(pb.UpsertGroupRequest(group=pb.Group(name="workers", max_delivery_attempts=1, consume_enabled=True)), metadata=AUTH, timeout=10)
    config = ClientConfiguration(broker.endpoint, Credentials(), request_timeout=10)
    producer = Producer(config, ("jobs",))
    producer.startup()
    m = Message(); m.topic = "jobs"; m.body = b"poison"; m.tag = "t"
    poison_id = producer.send(m).message_id
    m2 = Message(); m2.topic = "jobs"; m2.body = b"fine"; m2.tag = "t"
    fine_id = producer.send(m2).message_id
    producer.shutdown()

    consumer = SimpleConsumer(config, "workers", {"jobs": FilterExpression("*")}, await_duration=2)
    consumer.startup()
    try:
        def receive_bodies(count, invisible, ack_fine=True, timeout=20):
            got = []
            deadline = time.monotonic() + timeout
            while len(got) < count and time.monotonic() < deadline:
                for msg in consumer.receive(8, invisible):
                    got.append(msg)
                    if msg.body == b"fine" and ack_fine:
                        consumer.ack(msg)
            return got

        first = receive_bodies(2, 1)
        assert sorted(x.body for x in first) == [b"fine", b"poison"]
        time.sleep(1.5)
        # One attempt allowed: the next receive moves "poison" to %DLQ%workers instead.
        assert receive_bodies(1, 1, timeout=4) == []
        listed = stub.ListDeadLetters(pb.ListDeadLettersRequest(group="workers"), timeout=10)
        assert [x.body for x in listed.messages] == [b"poison"] and listed.pending == 1
        assert listed.messages[0].properties["__DLQ_ORIGIN_TOPIC"] == "jobs"

        redriven = stub.RedriveDeadLetters(pb.RedriveDeadLettersRequest(group="workers"), metadata=AUTH, timeout=10)
        assert (redriven.redriven, redriven.remaining) == (1, 0)
        again = stub.RedriveDeadLetters(pb.RedriveDeadLettersRequest(group="workers"), metadata=AUTH, timeout=10)
        assert again.redriven == 0, "each dead letter is re-driven once"
        [back] = receive_bodies(1, 30)
        assert back.body == b"poison" and back.topic == "jobs" and back.message_id == poison_id
        consumer.ack(back)

        stub.ResendMessage(pb.ResendMessageRequest(group="workers", message_id=fine_id), metadata=AUTH, timeout=10)
        [resent] = receive_bodies(1, 30, ack_fine=False)
        assert resent.body == b"fine" and resent.topic == "jobs"
        consumer.ack(resent)
        assert receive_bodies(1, 30, timeout=3) == []
    finally:
        consumer.shutdown()
    with pytest.raises(grpc.RpcError) as unknown:
        stub.ResendMessage(pb.ResendMessageRequest(group="workers", message_id="nope"), metadata=AUTH, timeout=10)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def _resident_pages(path, length):
    """How many of the first `length` bytes' pages of `path` are in the page cache (mincore)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, length, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED
        assert addr not in (None, ctypes.c_void_p(-1).value)
        try:
            pages = (length + 4095) // 4096
            vector = (ctypes.c_ubyte * pages)()
            assert libc.mincore(addr, length, vector) == 0
            return sum(v & 1 for v in vector)
        finally:
            libc.munmap(addr, length)
    finally:
        os.close(fd)


def test_page_cache_window_drops_old_log_pages_and_loses_nothing(broker_factory, admin_pb):
    """--page-cache-window (here the config file's pageCacheWindow, 1 MiB): once flushed, the
    CommitLog's pages more than the window behind leave the page cache; the messages there are
    still delivered, read from disk."""
    pb, pb_grpc = admin_pb
    broker = broker_factory({"autoCreate": True, "pageCacheWindow": 1})
    channel = grpc.insecure_channel(broker.endpoint)
    values = pb_grpc.AdminStub(channel).GetBrokerConfig(pb.GetBrokerConfigRequest(), timeout=10).values
    channel.close()
    assert values["pageCacheWindowMB"] == "1"

    config = ClientConfiguration(broker.endpoint, Credentials(), request_timeout=10)
    producer = Producer(config, ("bulk",))
    producer.startup()
    bodies = [os.urandom(512 << 10) for _ in range(16)]  # 8 MiB, incompressible (clients may gzip)
    for body in bodies:
        m = Message(); m.topic = "bulk"; m.body = body
        producer.send(m)
    producer.shutdown()

    segment = os.path.join(broker.data_dir, "commitlog", "0" * 20)
    deadline = time.monotonic() + 20  # the async flusher syncs every 500 ms; drop-behind follows
    while _resident_pages(segment, 1 << 20) > 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _resident_pages(segment, 1 << 20) == 0, "the log's first MiB is still cached"
    assert _resident_pages(segment, 8 << 20) > 0, "everything was dropped, the window too"

    consumer = SimpleConsumer(config, "bulk-readers", {"bulk": FilterExpression("*")}, await_duration=2)
    consumer.startup()
    got = []
    deadline = time.monotonic() + 30
    while len(got) < len(bodies) and time.monotonic() < deadline:
        for msg in consumer.receive(4, 30):
            consumer.ack(msg)
            got.append(msg.body)
    consumer.shutdown()
    assert sorted(got) == sorted(bodies)


def test_a_misspelled_config_key_stops_the_broker_and_names_the_key(tmp_path):
    import json
    import subprocess
    from conftest import binary
    for config, expected in [({"flushmode": "sync"}, 'unknown key "flushmode"'),
                             ({"topics": [{"name": "t", "queuecount": 2}]}, 'unknown key "queuecount" of an entry of "topics"')]:
        path = tmp_path / "broker.json"
        path.write_text(json.dumps(config))
        process = subprocess.Popen([binary("mqbroker"), "--data", str(tmp_path / "data"), "--port", "0", "--no-console", "--config", str(path)],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            output, _ = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            pytest.fail(f"the broker started with {config}")
        assert process.returncode != 0
        assert expected in output, output
