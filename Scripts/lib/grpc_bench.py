#!/usr/bin/env python3
"""The grpcio side of Scripts/bench-rpc.sh: a grpc.testing.TestService server, a client that
measures it the way `rpc-interop bench` measures ours, and the gRPC-framed request h2load posts.

  grpc_bench.py request FILE SIZE [PAYLOAD]
                                        write a framed SimpleRequest{response_size: SIZE}, with a
                                        payload of PAYLOAD bytes if given
  grpc_bench.py reply-size SIZE         the DATA bytes of a framed UnaryCall reply of SIZE payload bytes
  grpc_bench.py server PORT             serve UnaryCall / StreamingOutputCall (grpc.aio)
  grpc_bench.py client PORT MODE COUNT CONCURRENCY SIZE   print one JSON line like rpc-interop bench
"""
import asyncio
import json
import os
import struct
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def load_stubs():
    """grpc.testing's Python modules (empty_pb2, messages_pb2, test_pb2_grpc), compiled from our
    Protos/ with grpcio-tools into a temporary folder under the Python package `interop_protos`:
    a package named `grpc.testing` would collide with grpcio's own `grpc`, while the proto
    package, hence every path on the wire, stays grpc.testing. Tests/Interop uses it too."""
    from grpc_tools import protoc
    import grpc_tools
    out = tempfile.mkdtemp(prefix="grpc-testing-py-")
    src = os.path.join(out, "src", "interop_protos")
    os.makedirs(src)
    names = ("empty", "messages", "test")
    for name in names:
        with open(os.path.join(ROOT, "Protos", "grpc", "testing", name + ".proto")) as f:
            text = f.read().replace('import "grpc/testing/', 'import "interop_protos/')
        with open(os.path.join(src, name + ".proto"), "w") as f:
            f.write(text)
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    args = ["protoc", f"-I{os.path.join(out, 'src')}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}"]
    assert protoc.main(args + [f"interop_protos/{n}.proto" for n in names]) == 0, "grpcio-tools could not compile grpc/testing"
    sys.path.insert(0, out)
    from interop_protos import empty_pb2, messages_pb2, test_pb2_grpc
    return empty_pb2, messages_pb2, test_pb2_grpc


def write_request(path, size, payload=0):
    _, messages_pb2, _ = load_stubs()
    request = messages_pb2.SimpleRequest(response_size=int(size))
    if int(payload):
        request.payload.body = b"a" * int(payload)
    body = request.SerializeToString()
    with open(path, "wb") as f:
        f.write(struct.pack(">BI", 0, len(body)) + body)


async def serve(port):
    import grpc
    _, messages_pb2, test_pb2_grpc = load_stubs()

    class Service(test_pb2_grpc.TestServiceServicer):
        async def UnaryCall(self, request, context):
            return messages_pb2.SimpleResponse(payload=messages_pb2.Payload(body=b"\0" * request.response_size))

        async def StreamingOutputCall(self, request, context):
            for p in request.response_parameters:
                yield messages_pb2.StreamingOutputCallResponse(payload=messages_pb2.Payload(body=b"\0" * p.size))

    server = grpc.aio.server()
    test_pb2_grpc.add_TestServiceServicer_to_server(Service(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"listening on 127.0.0.1:{port}", flush=True)
    await server.wait_for_termination()


async def client(port, mode, count, concurrency, size):
    import grpc
    _, messages_pb2, test_pb2_grpc = load_stubs()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = test_pb2_grpc.TestServiceStub(channel)
    request = messages_pb2.SimpleRequest(response_size=size)
    for _ in range(100):
        await stub.UnaryCall(request)
    per = max(1, count // concurrency)
    latencies = []

    async def unary_caller():
        for _ in range(per):
            begin = time.perf_counter()
            await stub.UnaryCall(request)
            latencies.append(time.perf_counter() - begin)

    async def stream_caller():
        req = messages_pb2.StreamingOutputCallRequest(response_parameters=[messages_pb2.ResponseParameters(size=size)] * per)
        last = time.perf_counter()
        async for _ in stub.StreamingOutputCall(req):
            now = time.perf_counter()
            latencies.append(now - last)
            last = now

    started = time.perf_counter()
    await asyncio.gather(*[(stream_caller() if mode == "streaming" else unary_caller()) for _ in range(concurrency)])
    elapsed = time.perf_counter() - started
    await channel.close()
    latencies.sort()
    pct = lambda p: latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1e6 if latencies else 0
    print(json.dumps({"mode": mode, "count": len(latencies), "concurrency": concurrency, "payload": size,
                      "seconds": elapsed, "rate": len(latencies) / elapsed, "p50_us": pct(0.5), "p99_us": pct(0.99)}))


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "request":
        write_request(*sys.argv[2:5])
    elif command == "reply-size":
        _, messages_pb2, _ = load_stubs()
        print(5 + len(messages_pb2.SimpleResponse(payload=messages_pb2.Payload(body=b"\0" * int(sys.argv[2]))).SerializeToString()))
    elif command == "server":
        asyncio.run(serve(int(sys.argv[2])))
    elif command == "client":
        asyncio.run(client(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])))
    else:
        sys.exit(f"unknown command {command}")
