"""gRPC interop cases in both directions against the reference implementation (Python grpcio).

1. grpcio's client calls our `rpc-interop server` (RocketRPC + nghttp2 + protobuf-c).
2. Our `rpc-interop client` calls a grpcio TestService server written here in Python.
Case names and expectations follow grpc's interop test descriptions.
"""
import queue
import threading
from concurrent import futures

import grpc
import pytest

from conftest import Process, binary

SPECIAL_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"


@pytest.fixture(scope="module")
def stubs(grpc_testing_modules, interop_server):
    empty_pb2, messages_pb2, test_pb2_grpc = grpc_testing_modules
    channel = grpc.insecure_channel(interop_server)
    grpc.channel_ready_future(channel).result(timeout=10)
    yield empty_pb2, messages_pb2, test_pb2_grpc, channel
    channel.close()


def zeros(messages_pb2, size):
    return messages_pb2.Payload(type=messages_pb2.COMPRESSABLE, body=b"\0" * size)


def simple_request(messages_pb2, **extra):
    return messages_pb2.SimpleRequest(
        response_type=messages_pb2.COMPRESSABLE, response_size=314159, payload=zeros(messages_pb2, 271828), **extra
    )


# ---------------------------------------------------------------- Python client -> our server


def test_empty_unary(stubs):
    empty_pb2, _, test_pb2_grpc, channel = stubs
    response = test_pb2_grpc.TestServiceStub(channel).EmptyCall(empty_pb2.Empty(), timeout=10)
    assert response == empty_pb2.Empty()


def test_large_unary(stubs):
    _, messages_pb2, test_pb2_grpc, channel = stubs
    response = test_pb2_grpc.TestServiceStub(channel).UnaryCall(simple_request(messages_pb2), timeout=10)
    assert response.payload.body == b"\0" * 314159


def test_client_streaming(stubs):
    _, messages_pb2, test_pb2_grpc, channel = stubs
    requests = (messages_pb2.StreamingInputCallRequest(payload=zeros(messages_pb2, n)) for n in (27182, 8, 1828, 45904))
    response = test_pb2_grpc.TestServiceStub(channel).StreamingInputCall(requests, timeout=10)
    assert response.aggregated_payload_size == 74922


def test_server_streaming(stubs):
    _, messages_pb2, test_pb2_grpc, channel = stubs
    sizes = [31415, 9, 2653, 58979]
    request = messages_pb2.StreamingOutputCallRequest(
        response_type=messages_pb2.COMPRESSABLE,
        response_parameters=[messages_pb2.ResponseParameters(size=n) for n in sizes],
    )
    responses = list(test_pb2_grpc.TestServiceStub(channel).StreamingOutputCall(request, timeout=10))
    assert [len(r.payload.body) for r in responses] == sizes


def test_ping_pong(stubs):
    _, messages_pb2, test_pb2_grpc, channel = stubs
    request_sizes = [27182, 8, 1828, 45904]
    response_sizes = [31415, 9, 2653, 58979]
    pending = queue.Queue()

    def requests():
        for request_size, response_size in zip(request_sizes, response_sizes):
            yield messages_pb2.StreamingOutputCallRequest(
                response_type=messages_pb2.COMPRESSABLE,
                response_parameters=[messages_pb2.ResponseParameters(size=response_size)],
                payload=zeros(messages_pb2, request_size),
            )
            pending.get(timeout=10)  # the next ping only after its pong

    call = test_pb2_grpc.TestServiceStub(channel).FullDuplexCall(requests(), timeout=20)
    received = []
    for response in call:
        received.append(len(response.payload.body))
        pending.put(None)
    assert received == response_sizes


def test_empty_stream(stubs):
    _, _, test_pb2_grpc, channel = stubs
    assert list(test_pb2_grpc.TestServiceStub(channel).FullDuplexCall(iter(()), timeout=10)) == []


def test_custom_metadata(stubs):
    _, messages_pb2, test_pb2_grpc, channel = stubs
    metadata = (("x-grpc-test-echo-initial", "test_initial_metadata_value"), ("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab"))
    stub = test_pb2_grpc.TestServiceStub(channel)
    response, call = stub.UnaryCall.with_call(simple_request(messages_pb2), metadata=metadata, timeout=10)
    assert len(response.payload.body) == 314159
    assert ("x-grpc-test-echo-initial", "test_initial_metadata_value") in call.initial_metadata()
    assert ("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab") in call.trailing_metadata()

    request = messages_pb2.StreamingOutputCallRequest(
        response_type=messages_pb2.COMPRESSABLE,
        response_parameters=[messages_pb2.ResponseParameters(size=314159)],
        payload=zeros(messages_pb2, 271828),
    )
    stream = stub.FullDuplexCall(iter([request]), metadata=metadata, timeout=10)
    assert [len(r.payload.body) for r in stream] == [314159]
    assert ("x-grpc-test-echo-initial", "test_initial_metadata_value") in stream.initial_metadata()
    assert ("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab") in stream.trailing_metadata()


@pytest.mark.parametrize("message", ["test status message", SPECIAL_MESSAGE], ids=["status_code_and_message", "special_status_message"])
def test_status_code_and_message(stubs, message):
    _, messages_pb2, test_pb2_grpc, channel = stubs
    stub = test_pb2_grpc.TestServiceStub(channel)
    with pytest.raises(grpc.RpcError) as unary:
        stub.UnaryCall(messages_pb2.SimpleRequest(response_status=messages_pb2.EchoStatus(code=2, message=message)), timeout=10)
    assert unary.value.code() == grpc.StatusCode.UNKNOWN
    assert unary.value.details() == message

    request = messages_pb2.StreamingOutputCallRequest(response_status=messages_pb2.EchoStatus(code=2, message=message))
    with pytest.raises(grpc.RpcError) as streaming:
        list(stub.FullDuplexCall(iter([request]), timeout=10))
    assert streaming.value.code() == grpc.StatusCode.UNKNOWN
    assert streaming.value.details() == message


def test_unimplemented_method(stubs):
    empty_pb2, _, test_pb2_grpc, channel = stubs
    with pytest.raises(grpc.RpcError) as error:
        test_pb2_grpc.TestServiceStub(channel).UnimplementedCall(empty_pb2.Empty(), timeout=10)
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_unimplemented_service(stubs):
    empty_pb2, _, test_pb2_grpc, channel = stubs
    with pytest.raises(grpc.RpcError) as error:
        test_pb2_grpc.UnimplementedServiceStub(channel).UnimplementedCall(empty_pb2.Empty(), timeout=10)
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_cancel_after_begin(stubs):
    _, _, test_pb2_grpc, channel = stubs
    never = threading.Event()

    def requests():
        never.wait(10)
        return
        yield

    future = test_pb2_grpc.TestServiceStub(channel).StreamingInputCall.future(requests(), timeout=20)
    future.cancel()
    never.set()
    assert future.cancelled()
    with pytest.raises(grpc.FutureCancelledError):
        future.result()


def test_cancel_after_first_response(stubs):
    _, messages_pb2, test_pb2_grpc, channel = stubs
    hold = threading.Event()

    def requests():
        yield messages_pb2.StreamingOutputCallRequest(
            response_type=messages_pb2.COMPRESSABLE,
            response_parameters=[messages_pb2.ResponseParameters(size=31415)],
            payload=zeros(messages_pb2, 27182),
        )
        hold.wait(10)

    call = test_pb2_grpc.TestServiceStub(channel).FullDuplexCall(requests(), timeout=20)
    first = next(call)
    assert len(first.payload.body) == 31415
    call.cancel()
    hold.set()
    assert call.code() == grpc.StatusCode.CANCELLED


def test_timeout_on_sleeping_server(stubs):
    _, messages_pb2, test_pb2_grpc, channel = stubs
    hold = threading.Event()

    def requests():
        yield messages_pb2.StreamingOutputCallRequest(payload=zeros(messages_pb2, 27182))
        hold.wait(10)

    call = test_pb2_grpc.TestServiceStub(channel).FullDuplexCall(requests(), timeout=0.001)
    with pytest.raises(grpc.RpcError) as error:
        list(call)
    hold.set()
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_client_compressed_unary(stubs):
    _, messages_pb2, test_pb2_grpc, channel = stubs
    stub = test_pb2_grpc.TestServiceStub(channel)
    expect = messages_pb2.BoolValue(value=True)
    with pytest.raises(grpc.RpcError) as probe:
        stub.UnaryCall(simple_request(messages_pb2, expect_compressed=expect), timeout=10)
    assert probe.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    response = stub.UnaryCall(simple_request(messages_pb2, expect_compressed=expect), compression=grpc.Compression.Gzip, timeout=10)
    assert len(response.payload.body) == 314159
    plain = stub.UnaryCall(simple_request(messages_pb2, expect_compressed=messages_pb2.BoolValue(value=False)), timeout=10)
    assert len(plain.payload.body) == 314159


@pytest.mark.parametrize("compressed", [True, False])
def test_server_compressed_unary(stubs, compressed):
    _, messages_pb2, test_pb2_grpc, channel = stubs
    request = simple_request(messages_pb2, response_compressed=messages_pb2.BoolValue(value=compressed))
    response = test_pb2_grpc.TestServiceStub(channel).UnaryCall(request, timeout=10)
    assert response.payload.body == b"\0" * 314159


def test_max_message_size(stubs):
    _, messages_pb2, test_pb2_grpc, channel = stubs
    stub = test_pb2_grpc.TestServiceStub(channel)
    # Our server's default receive limit is 4 MiB.
    def request(size):
        return messages_pb2.SimpleRequest(response_size=314159, payload=zeros(messages_pb2, size))

    with pytest.raises(grpc.RpcError) as too_large:
        stub.UnaryCall(request(5 << 20), timeout=10)
    assert too_large.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # The connection survives and a 3 MiB request still works.
    ok = stub.UnaryCall(request(3 << 20), timeout=10)
    assert len(ok.payload.body) == 314159


# ---------------------------------------------------------------- our client -> grpcio server


def python_test_service(empty_pb2, messages_pb2, test_pb2_grpc):
    def echo_metadata(context):
        metadata = dict(context.invocation_metadata())
        if "x-grpc-test-echo-initial" in metadata:
            context.send_initial_metadata((("x-grpc-test-echo-initial", metadata["x-grpc-test-echo-initial"]),))
        if "x-grpc-test-echo-trailing-bin" in metadata:
            context.set_trailing_metadata((("x-grpc-test-echo-trailing-bin", metadata["x-grpc-test-echo-trailing-bin"]),))

    def abort_with(context, status):
        code = next(c for c in grpc.StatusCode if c.value[0] == status.code)
        context.abort(code, status.message)

    def zeros_payload(size):
        return messages_pb2.Payload(type=messages_pb2.COMPRESSABLE, body=b"\0" * size)

    class Servicer(test_pb2_grpc.TestServiceServicer):
        def EmptyCall(self, request, context):
            echo_metadata(context)
            return empty_pb2.Empty()

        def UnaryCall(self, request, context):
            echo_metadata(context)
            if request.response_status.code:
                abort_with(context, request.response_status)
            if request.response_compressed.value:
                context.set_compression(grpc.Compression.Gzip)
            return messages_pb2.SimpleResponse(payload=zeros_payload(request.response_size))

        def StreamingOutputCall(self, request, context):
            echo_metadata(context)
            for parameters in request.response_parameters:
                yield messages_pb2.StreamingOutputCallResponse(payload=zeros_payload(parameters.size))

        def StreamingInputCall(self, request_iterator, context):
            total = sum(len(r.payload.body) for r in request_iterator)
            return messages_pb2.StreamingInputCallResponse(aggregated_payload_size=total)

        def FullDuplexCall(self, request_iterator, context):
            echo_metadata(context)
            for request in request_iterator:
                if request.response_status.code:
                    abort_with(context, request.response_status)
                for parameters in request.response_parameters:
                    yield messages_pb2.StreamingOutputCallResponse(payload=zeros_payload(parameters.size))

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    test_pb2_grpc.add_TestServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


# grpcio's Python server cannot tell whether a request message arrived compressed, so the
# client_compressed_unary probe (which needs the server to reject an uncompressed request) is
# only run against our own server above.
OUR_CLIENT_CASES = [
    "empty_unary", "large_unary", "client_streaming", "server_streaming", "ping_pong", "empty_stream",
    "custom_metadata", "status_code_and_message", "special_status_message", "unimplemented_method",
    "unimplemented_service", "cancel_after_begin", "cancel_after_first_response", "timeout_on_sleeping_server",
    "server_compressed_unary", "client_compressed_streaming", "server_compressed_streaming", "max_message_size",
]


@pytest.fixture(scope="module")
def python_server(grpc_testing_modules):
    server, port = python_test_service(*grpc_testing_modules)
    yield port
    server.stop(grace=None)


@pytest.mark.parametrize("case", OUR_CLIENT_CASES)
def test_our_client_against_grpcio_server(python_server, case):
    client = Process([binary("rpc-interop"), "client", "--server-port", str(python_server), "--test-case", case], "rpc-interop-client")
    try:
        code = client.proc.wait(timeout=60)
    finally:
        client.stop()
    assert code == 0, client.output()[-4000:]
    assert f"PASS {case}" in client.output()
