"""Bad input to a real mqbroker gets the protocol's status codes, never a crash or a hang.

Raw calls through the apache.rocketmq.v2 stubs that ship with rocketmq-python-client, so every
field can be set wrong on purpose."""
import time
import uuid

import grpc
import pytest
from google.protobuf import duration_pb2
from rocketmq.grpc_protocol import definition_pb2 as d, service_pb2 as s, service_pb2_grpc

CONFIG = {
    "flushMode": "async",
    "autoCreate": False,
    "topics": [{"name": "known", "queueCount": 2, "permission": 6, "messageTypes": ["NORMAL"]},
               {"name": "read-only", "queueCount": 1, "permission": 4, "messageTypes": ["NORMAL"]},
               {"name": "write-only", "queueCount": 1, "permission": 2, "messageTypes": ["NORMAL"]},
               {"name": "ordered", "queueCount": 2, "permission": 6, "messageTypes": ["FIFO"]}],
    "groups": [{"name": "known-group", "maxDeliveryAttempts": 16, "fifo": False, "consumeEnabled": True},
               {"name": "fifo-group", "maxDeliveryAttempts": 16, "fifo": True, "consumeEnabled": True}],
}
META = (("x-mq-client-id", "pytest-bad-input"), ("x-mq-language", "PYTHON"), ("authorization", ""))


@pytest.fixture(scope="module")
def bad_input_broker(tmp_path_factory):
    from conftest import Broker
    broker = Broker(str(tmp_path_factory.mktemp("bad") / "data"), CONFIG)
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def stub(bad_input_broker):
    channel = grpc.insecure_channel(bad_input_broker.endpoint)
    yield service_pb2_grpc.MessagingServiceStub(channel)
    channel.close()


def msg(topic="known", body=b"x", **system):
    system.setdefault("message_type", d.NORMAL)
    sp = d.SystemProperties(message_id=uuid.uuid4().hex, body_encoding=d.IDENTITY, **system)
    return d.Message(topic=d.Resource(name=topic), system_properties=sp, body=body)


def send(stub, message, metadata=META):
    return stub.SendMessage(s.SendMessageRequest(messages=[message]), metadata=metadata, timeout=10)


def receive(stub, **fields):
    request = s.ReceiveMessageRequest(
        group=d.Resource(name="known-group"),
        message_queue=d.MessageQueue(topic=d.Resource(name="known"), id=0),
        filter_expression=fields.pop("filter_expression", d.FilterExpression(type=d.TAG, expression="*")),
        batch_size=fields.pop("batch_size", 16),
        invisible_duration=fields.pop("invisible_duration", duration_pb2.Duration(seconds=30)),
        long_polling_timeout=duration_pb2.Duration(seconds=0), **fields)
    return list(stub.ReceiveMessage(request, metadata=META, timeout=10))


def test_missing_client_id_is_client_id_required(stub):
    response = send(stub, msg(), metadata=(("x-mq-language", "PYTHON"),))
    assert response.status.code == d.CLIENT_ID_REQUIRED
    blank = send(stub, msg(), metadata=(("x-mq-client-id", ""),))
    assert blank.status.code == d.CLIENT_ID_REQUIRED


def test_unknown_topic_is_topic_not_found(stub):
    assert send(stub, msg(topic="no-such-topic")).status.code == d.TOPIC_NOT_FOUND
    route = stub.QueryRoute(s.QueryRouteRequest(topic=d.Resource(name="no-such-topic")), metadata=META, timeout=10)
    assert route.status.code == d.TOPIC_NOT_FOUND


def test_known_topic_routes_with_permissions(stub):
    route = stub.QueryRoute(s.QueryRouteRequest(topic=d.Resource(name="known")), metadata=META, timeout=10)
    assert route.status.code == d.OK
    assert [q.id for q in route.message_queues] == [0, 1]
    assert all(q.permission == d.READ_WRITE and list(q.accept_message_types) == [d.NORMAL] for q in route.message_queues)


def test_wrong_message_type_and_group_rules(stub):
    fifo = msg(message_group="g")
    fifo.system_properties.message_type = d.FIFO
    assert send(stub, fifo).status.code == d.MESSAGE_PROPERTY_CONFLICT_WITH_TYPE
    normal_with_group = msg(message_group="g")
    assert send(stub, normal_with_group).status.code == d.ILLEGAL_MESSAGE_GROUP


def test_oversized_and_empty_bodies(stub):
    assert send(stub, msg(body=b"\0" * ((4 << 20) + 1))).status.code == d.MESSAGE_BODY_TOO_LARGE
    assert send(stub, msg(body=b"")).status.code == d.MESSAGE_BODY_EMPTY
    # A body of exactly the limit passes the checks, but its record (header and properties
    # added) is more than the store takes: in a batch, that refuses the batch whole before
    # anything is stored, rather than store the first and fail the rest.
    before = end_offsets(stub)
    batch = [msg(queue_id=1), msg(queue_id=1, body=b"\0" * (4 << 20)), msg(queue_id=1)]
    answer = stub.SendMessage(s.SendMessageRequest(messages=batch), metadata=META, timeout=30)
    assert answer.status.code == d.MESSAGE_BODY_TOO_LARGE and "message 2 of 3" in answer.status.message, answer.status
    assert end_offsets(stub) == before


def test_illegal_tag_and_property_key(stub):
    assert send(stub, msg(tag="a|b")).status.code == d.ILLEGAL_MESSAGE_TAG
    bad_key = msg()
    bad_key.user_properties["__internal"] = "x"
    assert send(stub, bad_key).status.code == d.ILLEGAL_MESSAGE_PROPERTY_KEY


def test_property_names_rocketmq_keeps_are_refused(stub):
    # RocketMQ 5's proxy refuses a user property named like one of its system properties
    # ("property is used by system"); an application tried here must fail as it would there.
    before = end_offsets(stub)

    def with_property(key):
        message = msg(queue_id=0)
        message.user_properties[key] = "v"
        return message

    for key in ("DELAY", "CLUSTER", "TTL", "1ST_POP_TIME", "TIMER_DELIVER_MS", "UNIQ_KEY", "__BORNHOST"):
        alone = send(stub, with_property(key))  # one message: the broker's direct path
        assert alone.status.code == d.ILLEGAL_MESSAGE_PROPERTY_KEY, (key, alone.status)
        assert key in alone.status.message
        batch = stub.SendMessage(s.SendMessageRequest(messages=[msg(queue_id=0), with_property(key)]), metadata=META, timeout=10)
        assert batch.status.code == d.ILLEGAL_MESSAGE_PROPERTY_KEY, (key, batch.status)
    assert end_offsets(stub) == before
    # The names are RocketMQ's exactly: other spellings are the user's.
    for key in ("delay", "Cluster", "TTL_SECONDS", "ORDER_ID", "1ST"):
        assert send(stub, with_property(key)).status.code == d.OK, key
        batch = stub.SendMessage(s.SendMessageRequest(messages=[msg(queue_id=0), with_property(key)]), metadata=META, timeout=10)
        assert batch.status.code == d.OK, (key, batch.status)
    assert sum(end_offsets(stub)) == sum(before) + 15


def test_read_only_topic_refuses_writes(stub):
    assert send(stub, msg(topic="read-only")).status.code == d.FORBIDDEN


def test_absurd_batch_sizes_and_durations(stub):
    for batch in (0, -1, 100000):
        [only] = receive(stub, batch_size=batch)
        assert only.status.code == d.BAD_REQUEST, batch
    for seconds in (0, 10**7):
        [only] = receive(stub, invisible_duration=duration_pb2.Duration(seconds=seconds))
        assert only.status.code == d.ILLEGAL_INVISIBLE_TIME, seconds


def test_unknown_group_is_consumer_group_not_found(stub):
    request = s.ReceiveMessageRequest(
        group=d.Resource(name="no-such-group"),
        message_queue=d.MessageQueue(topic=d.Resource(name="known"), id=0),
        batch_size=1, invisible_duration=duration_pb2.Duration(seconds=30))
    [only] = list(stub.ReceiveMessage(request, metadata=META, timeout=10))
    assert only.status.code == d.CONSUMER_GROUP_NOT_FOUND


def test_invalid_receipt_handles(stub):
    for handle in ["", "garbage", "other-broker:0:0:1", "broker-a:0:999999:abc"]:
        response = stub.AckMessage(s.AckMessageRequest(
            group=d.Resource(name="known-group"), topic=d.Resource(name="known"),
            entries=[s.AckMessageEntry(message_id="m", receipt_handle=handle)]), metadata=META, timeout=10)
        assert response.status.code == d.INVALID_RECEIPT_HANDLE, handle
    change = stub.ChangeInvisibleDuration(s.ChangeInvisibleDurationRequest(
        group=d.Resource(name="known-group"), topic=d.Resource(name="known"), receipt_handle="garbage",
        invisible_duration=duration_pb2.Duration(seconds=5)), metadata=META, timeout=10)
    assert change.status.code == d.INVALID_RECEIPT_HANDLE


def test_send_then_receive_raw_and_stale_handle_after_change(stub):
    assert send(stub, msg(body=b"raw")).status.code == d.OK
    messages, delivered = [], []
    for queue in (0, 1):
        before_ns = time.time_ns()
        request = s.ReceiveMessageRequest(
            group=d.Resource(name="known-group"), message_queue=d.MessageQueue(topic=d.Resource(name="known"), id=queue),
            filter_expression=d.FilterExpression(type=d.TAG, expression="*"), batch_size=16,
            invisible_duration=duration_pb2.Duration(seconds=30), long_polling_timeout=duration_pb2.Duration(seconds=1))
        responses = list(stub.ReceiveMessage(request, metadata=META, timeout=10))
        assert responses[0].HasField("status"), "the status comes first"
        batch = [r.message for r in responses if r.HasField("message")]
        if batch:
            # When the broker handed the batch over, to well below the millisecond: clients
            # measure delivery latency from it.
            [stamp] = [r.delivery_timestamp for r in responses if r.HasField("delivery_timestamp")]
            delivered.append(stamp.seconds * 10**9 + stamp.nanos)
            assert before_ns - 10**6 <= delivered[-1] <= time.time_ns(), (before_ns, delivered[-1])
        messages += batch
    [m] = [m for m in messages if m.body == b"raw"]
    assert any(stamp % 10**6 for stamp in delivered), "delivery timestamps carry sub-millisecond nanos"
    assert m.system_properties.body_digest.type == d.CRC32
    old = m.system_properties.receipt_handle
    change = stub.ChangeInvisibleDuration(s.ChangeInvisibleDurationRequest(
        group=d.Resource(name="known-group"), topic=d.Resource(name="known"), receipt_handle=old,
        invisible_duration=duration_pb2.Duration(seconds=30)), metadata=META, timeout=10)
    assert change.status.code == d.OK
    stale = stub.AckMessage(s.AckMessageRequest(
        group=d.Resource(name="known-group"), topic=d.Resource(name="known"),
        entries=[s.AckMessageEntry(message_id="m", receipt_handle=old)]), metadata=META, timeout=10)
    assert stale.status.code == d.INVALID_RECEIPT_HANDLE
    fresh = stub.AckMessage(s.AckMessageRequest(
        group=d.Resource(name="known-group"), topic=d.Resource(name="known"),
        entries=[s.AckMessageEntry(message_id="m", receipt_handle=change.receipt_handle)]), metadata=META, timeout=10)
    assert fresh.status.code == d.OK


def test_malformed_sql_filter_is_refused_clearly(stub):
    [only] = receive(stub, filter_expression=d.FilterExpression(type=d.SQL, expression="a > 1 AND"))
    assert only.status.code == d.ILLEGAL_FILTER_EXPRESSION
    assert "at character 10" in only.status.message, only.status.message
    # A condition that could never be true is refused too, rather than matching nothing.
    [never] = receive(stub, filter_expression=d.FilterExpression(type=d.SQL, expression="a > '1'"))
    assert never.status.code == d.ILLEGAL_FILTER_EXPRESSION
    # A well-formed one is taken: here, nothing new matches it.
    [fine] = receive(stub, filter_expression=d.FilterExpression(type=d.SQL, expression="a > 1"))
    assert fine.status.code == d.MESSAGE_NOT_FOUND


def end_offsets(stub, topic="known", queues=2):
    answers = [stub.QueryOffset(s.QueryOffsetRequest(message_queue=d.MessageQueue(topic=d.Resource(name=topic), id=q),
                                                    query_offset_policy=d.END), metadata=META, timeout=10) for q in range(queues)]
    assert all(a.status.code == d.OK for a in answers), answers
    return [a.offset for a in answers]


def grown_by(stub, sends):
    before = end_offsets(stub)
    for _ in range(sends[0]):
        assert sends[1]().status.code == d.OK
    return [after - was for after, was in zip(end_offsets(stub), before)]


def test_a_queue_id_left_unset_is_the_brokers_to_pick(stub):
    # proto3 cannot tell an unset queue_id from 0, and the official Python client never sets it:
    # the broker spreads those sends round-robin, as RocketMQ 5's proxy does.
    assert grown_by(stub, (8, lambda: send(stub, msg()))) == [4, 4]
    # A queue the client did choose is kept.
    assert grown_by(stub, (3, lambda: send(stub, msg(queue_id=1)))) == [0, 3]
    # Our Swift client picks every queue itself, 0 included, and says so in its receipts.
    swift = (("x-mq-client-id", "pytest-swift"), ("x-mq-language", "SWIFT"))
    assert grown_by(stub, (3, lambda: send(stub, msg(), metadata=swift))) == [3, 0]


def test_message_checks_answer_rocketmqs_codes(stub):
    # The codes RocketMQ 5's proxy gives for the same messages (its clients map them to
    # exception types: MESSAGE_PROPERTIES_TOO_LARGE is a PayloadTooLargeException, say).
    def code(message):
        return send(stub, message).status.code

    no_id = msg()
    no_id.system_properties.message_id = ""
    assert code(no_id) == d.ILLEGAL_MESSAGE_ID
    blank_id = msg()
    blank_id.system_properties.message_id = "  "
    assert code(blank_id) == d.ILLEGAL_MESSAGE_ID
    assert code(msg(keys=["order 42"])) == d.OK  # a key may hold spaces, as RocketMQ allows
    assert code(msg(keys=[" "])) == d.ILLEGAL_MESSAGE_KEY
    assert code(msg(keys=["a\x01b"])) == d.ILLEGAL_MESSAGE_KEY
    assert code(msg(tag="a\x01b")) == d.ILLEGAL_MESSAGE_TAG
    large = msg()
    large.user_properties["k"] = "v" * 20000
    assert code(large) == d.MESSAGE_PROPERTIES_TOO_LARGE
    many = msg()
    for i in range(129):
        many.user_properties[f"p{i}"] = "v"
    assert code(many) == d.MESSAGE_PROPERTIES_TOO_LARGE
    control_value = msg()
    control_value.user_properties["k"] = "a\nb"
    assert code(control_value) == d.ILLEGAL_MESSAGE_PROPERTY_KEY
    assert stub.SendMessage(s.SendMessageRequest(messages=[]), metadata=META, timeout=10).status.code == d.MESSAGE_CORRUPTED


def test_a_batch_with_one_bad_message_is_refused_whole(stub):
    # RocketMQ stores a batch as one: a producer told "refused" may fix it and send all of it
    # again without storing any message twice.
    before = end_offsets(stub)
    batch = [msg(queue_id=1), msg(queue_id=1, keys=[" "]), msg(queue_id=1)]
    answer = stub.SendMessage(s.SendMessageRequest(messages=batch), metadata=META, timeout=10)
    assert answer.status.code == d.ILLEGAL_MESSAGE_KEY, answer.status
    assert "message 2 of 3" in answer.status.message
    assert [e.status.code for e in answer.entries] == [d.ILLEGAL_MESSAGE_KEY] * 3
    assert end_offsets(stub) == before
    # The same batch, mended, is stored whole and in order.
    batch[1].system_properties.keys[:] = ["k"]
    answer = stub.SendMessage(s.SendMessageRequest(messages=batch), metadata=META, timeout=10)
    assert answer.status.code == d.OK and [e.status.code for e in answer.entries] == [d.OK] * 3
    assert [e.offset for e in answer.entries] == [before[1], before[1] + 1, before[1] + 2]
    assert end_offsets(stub) == [before[0], before[1] + 3]
    # A batch left to the broker goes to one queue, as RocketMQ stores a batch, in order.
    for _ in range(2):
        was = end_offsets(stub)
        answer = stub.SendMessage(s.SendMessageRequest(messages=[msg(), msg(), msg()]), metadata=META, timeout=10)
        assert answer.status.code == d.OK
        grown = [after - b for after, b in zip(end_offsets(stub), was)]
        assert sorted(grown) == [0, 3], grown
        queue = grown.index(3)
        assert [e.offset for e in answer.entries] == [was[queue], was[queue] + 1, was[queue] + 2]

    # A message of a group goes to its group's queue even in a batch: the group's next message,
    # sent alone, goes there, and a group is ordered only within one queue.
    def fifo(group):
        return msg(topic="ordered", message_type=d.FIFO, message_group=group)

    def grown(messages):
        was = end_offsets(stub, "ordered")
        answer = stub.SendMessage(s.SendMessageRequest(messages=messages), metadata=META, timeout=10)
        assert answer.status.code == d.OK, answer.status
        return [after - b for after, b in zip(end_offsets(stub, "ordered"), was)]

    home = {}
    for name in (f"g{i}" for i in range(32)):
        home[name] = grown([fifo(name)]).index(1)
        if len(set(home.values())) == 2:
            break
    a, b = next(n for n in home if home[n] == 0), next(n for n in home if home[n] == 1)
    assert grown([fifo(b), fifo(a), fifo(b)]) == [1, 2]


def test_a_batch_that_mixes_topics_is_refused_whole(stub):
    # RocketMQ 5 stores a batch as one, in one queue of one topic, and refuses a batch whose
    # messages name different topics as MESSAGE_CORRUPTED; nothing of it is stored.
    before = end_offsets(stub)
    ordered_before = end_offsets(stub, "ordered")
    batch = [msg(), msg(), msg(topic="ordered", message_type=d.FIFO, message_group="g")]
    answer = stub.SendMessage(s.SendMessageRequest(messages=batch), metadata=META, timeout=10)
    assert answer.status.code == d.MESSAGE_CORRUPTED, answer.status
    assert "message 3 of 3" in answer.status.message and "mixes topics" in answer.status.message
    assert [e.status.code for e in answer.entries] == [d.MESSAGE_CORRUPTED] * 3
    # The same topic in another namespace is another topic.
    other_namespace = msg()
    other_namespace.topic.resource_namespace = "elsewhere"
    answer = stub.SendMessage(s.SendMessageRequest(messages=[msg(), other_namespace]), metadata=META, timeout=10)
    assert answer.status.code == d.MESSAGE_CORRUPTED, answer.status
    assert end_offsets(stub) == before and end_offsets(stub, "ordered") == ordered_before


def test_a_heartbeat_of_no_known_client_type_is_unrecognized(stub):
    # RocketMQ 5 takes a client's type from its settings and answers UNRECOGNIZED_CLIENT_TYPE
    # when there is none; the type a heartbeat carries (official clients set it) counts too.
    def beat(client, **fields):
        meta = (("x-mq-client-id", client), ("x-mq-language", "PYTHON"))
        return stub.Heartbeat(s.HeartbeatRequest(**fields), metadata=meta, timeout=10).status.code

    assert beat("pytest-untyped") == d.UNRECOGNIZED_CLIENT_TYPE
    assert beat("pytest-untyped", group=d.Resource(name="known-group")) == d.UNRECOGNIZED_CLIENT_TYPE
    assert beat("pytest-typed", client_type=d.SIMPLE_CONSUMER, group=d.Resource(name="known-group")) == d.OK
    # Once the broker knows the client's type, a heartbeat that leaves it out is taken.
    assert beat("pytest-typed", group=d.Resource(name="known-group")) == d.OK
    assert beat("pytest-producer", client_type=d.PRODUCER) == d.OK
    assert beat("pytest-producer") == d.OK


def test_assignments_are_per_broker_unless_the_group_is_fifo(stub):
    # RocketMQ 5's answer: a push consumer of a non-FIFO group long-polls the broker as a whole
    # (queue -1); a FIFO group's order is per queue, so it gets each queue.
    def assigned(group):
        answer = stub.QueryAssignment(s.QueryAssignmentRequest(topic=d.Resource(name="known"), group=d.Resource(name=group)),
                                      metadata=META, timeout=10)
        assert answer.status.code == d.OK, answer.status
        return [(a.message_queue.id, a.message_queue.broker.endpoints.addresses[0].port > 0) for a in answer.assignments]

    assert assigned("known-group") == [(-1, True)]
    # A topic with no readable queue assigns nothing: FORBIDDEN, as RocketMQ 5 answers.
    none = stub.QueryAssignment(s.QueryAssignmentRequest(topic=d.Resource(name="write-only"), group=d.Resource(name="known-group")),
                                metadata=META, timeout=10)
    assert none.status.code == d.FORBIDDEN and not none.assignments, none
    assert assigned("fifo-group") == [(0, True), (1, True)]
    # A receive from queue -1 takes from every queue.
    assert send(stub, msg(queue_id=1)).status.code == d.OK
    request = s.ReceiveMessageRequest(
        group=d.Resource(name="known-group"), message_queue=d.MessageQueue(topic=d.Resource(name="known"), id=-1),
        filter_expression=d.FilterExpression(type=d.TAG, expression="*"), batch_size=32,
        invisible_duration=duration_pb2.Duration(seconds=30), long_polling_timeout=duration_pb2.Duration(seconds=0))
    queues = {r.message.system_properties.queue_id for r in stub.ReceiveMessage(request, metadata=META, timeout=10)
              if r.HasField("message")}
    assert 1 in queues, queues


def test_illegal_names_are_illegal_even_where_nothing_is_created(stub):
    # This broker does not auto-create: a name no topic can have is still ILLEGAL_TOPIC, not
    # TOPIC_NOT_FOUND (the code would otherwise depend on an unrelated setting).
    for name in ("bad topic!", "A" * 200, "%SYS%TIMER", "TBW102"):
        assert send(stub, msg(topic=name)).status.code == d.ILLEGAL_TOPIC, name
        route = stub.QueryRoute(s.QueryRouteRequest(topic=d.Resource(name=name)), metadata=META, timeout=10)
        assert route.status.code == d.ILLEGAL_TOPIC, name


def test_a_pull_outside_the_queue_says_where_to_pull_instead(stub):
    assert send(stub, msg(queue_id=1)).status.code == d.OK
    end = end_offsets(stub)[1]

    def pull(offset):
        request = s.PullMessageRequest(
            group=d.Resource(name="known-group"), message_queue=d.MessageQueue(topic=d.Resource(name="known"), id=1),
            offset=offset, batch_size=8, filter_expression=d.FilterExpression(type=d.TAG, expression="*"),
            long_polling_timeout=duration_pb2.Duration(seconds=0))
        return [r for r in stub.PullMessage(request, metadata=META, timeout=10)]

    past = pull(end + 5)
    assert [r.WhichOneof("content") for r in past] == ["status", "next_offset"]
    assert past[0].status.code == d.ILLEGAL_OFFSET and past[1].next_offset == end
    before = pull(-1)
    assert before[0].status.code == d.ILLEGAL_OFFSET and before[1].next_offset == 0


def test_a_string_with_a_nul_or_not_utf8_is_refused_not_cut_short(stub, bad_input_broker):
    """protobuf-c hands strings over as C strings, without their length: a NUL inside one would
    cut it short (a send to "known\0elsewhere" stored in "known", a property value losing its
    tail), and bytes that are not UTF-8 would turn into U+FFFD. The request is refused instead,
    as a request that does not decode: INTERNAL, as grpc-java and grpc-go answer one."""
    def ends():
        return [stub.QueryOffset(s.QueryOffsetRequest(message_queue=d.MessageQueue(topic=d.Resource(name="known"), id=q),
                                                      query_offset_policy=d.END), metadata=META, timeout=10).offset for q in (0, 1)]
    before = ends()
    with pytest.raises(grpc.RpcError) as refused:
        send(stub, msg(topic="known\0elsewhere"))
    assert refused.value.code() == grpc.StatusCode.INTERNAL
    assert "field 2 (name) of apache.rocketmq.v2.Resource holds a NUL byte" in refused.value.details()
    cut = msg()
    cut.user_properties["note"] = "kept\0lost"
    with pytest.raises(grpc.RpcError) as refused:
        send(stub, cut)
    assert refused.value.code() == grpc.StatusCode.INTERNAL and "holds a NUL byte" in refused.value.details()
    # Python's protobuf writes only UTF-8: the bad bytes are patched into an encoding.
    encoded = s.QueryRouteRequest(topic=d.Resource(name="known-XX")).SerializeToString().replace(b"XX", b"\xff\xfe")
    channel = grpc.insecure_channel(bad_input_broker.endpoint)
    try:
        raw = channel.unary_unary("/apache.rocketmq.v2.MessagingService/QueryRoute",
                                  request_serializer=lambda b: b, response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as refused:
            raw(encoded, metadata=META, timeout=10)
        assert refused.value.code() == grpc.StatusCode.INTERNAL and "is not valid UTF-8" in refused.value.details()
    finally:
        channel.close()
    # The refused sends stored nothing in "known"; a send that decodes still goes in.
    assert ends() == before
    assert send(stub, msg()).status.code == d.OK and sum(ends()) == sum(before) + 1
