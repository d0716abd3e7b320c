import Foundation

/// Python grpcio as an independent gRPC peer. Scripts are written to temporary files and run with
/// `python3`; tests skip themselves when grpcio is not importable.
enum PythonPeer {
    static var isAvailable: Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", "import grpc"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do {
            try process.run()
            process.waitUntilExit()
            return process.terminationStatus == 0
        } catch {
            return false
        }
    }

    /// A grpcio server with generic (codegen-free) handlers for `interop.Echo`:
    /// `Get` echoes (or aborts with FAILED_PRECONDITION plus trailers when the payload contains "fail"),
    /// `Expand` streams the request 5 times, `Update` echoes each request. Prints its port, then serves
    /// until stdin closes.
    static let serverScript = #"""
import sys, grpc
from concurrent import futures

def get(request, context):
    md = dict(context.invocation_metadata())
    if b"fail" in request:
        context.set_trailing_metadata((("x-trailer", "t"), ("x-trailer-bin", b"\x00\x01\xff")))
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, "no way \u263a \U0001F608 100%")
    if "x-echo" in md:
        context.send_initial_metadata((("x-echo", md["x-echo"]),))
    return request

def expand(request, context):
    for _ in range(5):
        yield request

def update(request_iterator, context):
    for r in request_iterator:
        yield r

handlers = {
    "Get": grpc.unary_unary_rpc_method_handler(get),
    "Expand": grpc.unary_stream_rpc_method_handler(expand),
    "Update": grpc.stream_stream_rpc_method_handler(update),
}
server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("interop.Echo", handlers),))
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(port, flush=True)
sys.stdin.read()
server.stop(0)
"""#

    /// A grpcio client exercising our server's `rocketrpc.test.Echo`; prints one line per check and
    /// exits non-zero on the first failure.
    static let clientScript = #"""
import sys, grpc
port = sys.argv[1]
def msg(b): return b"\x0a" + bytes([len(b)]) + b if b else b""
ch = grpc.insecure_channel("127.0.0.1:" + port)
get = ch.unary_unary("/rocketrpc.test.Echo/Get")
r, call = get.with_call(msg(b"hello"), timeout=10)
assert r == msg(b"hello"), r
print("unary ok")
r, call = get.with_call(msg(b"metadata"), timeout=10, metadata=(("x-a", "1"), ("x-b-bin", b"\x00\xff")))
init = dict(call.initial_metadata()); trail = dict(call.trailing_metadata())
assert init.get("x-a") == "1" and init.get("x-b-bin") == b"\x00\xff", init
assert trail.get("x-b-bin") == b"\x00\xff", trail
print("metadata ok")
try:
    get(msg(b"fail:9:bad \xe2\x98\xba thing"), timeout=10)
    sys.exit("expected failure")
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, e.code()
    assert e.details() == "bad \u263a thing", e.details()
print("status ok")
expand = ch.unary_stream("/rocketrpc.test.Expand".replace("Expand", "Echo/Expand"))
got = list(expand(msg(b"7:10"), timeout=10))
assert len(got) == 7, len(got)
print("server streaming ok")
collect = ch.stream_unary("/rocketrpc.test.Echo/Collect")
r = collect(iter([msg(b"a"), msg(b"b"), msg(b"c")]), timeout=10)
assert r == msg(b"a,b,c"), r
print("client streaming ok")
update = ch.stream_stream("/rocketrpc.test.Echo/Update")
got = list(update(iter([msg(b"x"), msg(b"y")]), timeout=10))
assert got == [msg(b"echo:x"), msg(b"echo:y")], got
print("bidi ok")
gz = grpc.insecure_channel("127.0.0.1:" + port, compression=grpc.Compression.Gzip)
r = gz.unary_unary("/rocketrpc.test.Echo/Get")(msg(b"z" * 100), timeout=10)
assert r == msg(b"z" * 100), r
print("gzip ok")
try:
    ch.unary_unary("/rocketrpc.test.Echo/Missing")(msg(b"x"), timeout=10)
    sys.exit("expected UNIMPLEMENTED")
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.UNIMPLEMENTED, e.code()
print("unimplemented ok")
try:
    get(msg(b"sleep"), timeout=0.3)
    sys.exit("expected DEADLINE_EXCEEDED")
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e.code()
print("deadline ok")
"""#

    static func writeScript(_ text: String) throws -> String {
        let path = NSTemporaryDirectory() + "rocketrpc-\(UUID().uuidString).py"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}
