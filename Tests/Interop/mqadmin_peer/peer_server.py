"""A grpcio server with grpcio-reflection serving peerzoo.v1.Zoo (peer.proto), a schema mqadmin
has never seen. Run by Tests/Interop/test_mqadmin_grpcurl.py:

    python peer_server.py --gen DIR --port 0     # DIR holds peer_pb2.py / peer_pb2_grpc.py

prints `listening on 127.0.0.1:PORT` once serving, and serves until killed.
"""
import argparse
import sys
import time
from concurrent import futures


def sample_kitchen(pb2):
    """The fully populated Kitchen that Fill returns and the test compares against."""
    from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2, wrappers_pb2

    k = pb2.Kitchen(
        i32=-42, i64=-9007199254740993, u32=4000000000, u64=18446744073709551615,
        s32=-7, s64=-9223372036854775808, f32=4294967295, f64=1234567890123,
        sf32=-2147483648, sf64=9223372036854775807, fl=1.5, db=-2.25e-300,
        flag=True, text="héllo <&> \"q\" \n ☺", blob=b"\x00\x01\xfe\xff", color=pb2.BLUE,
        camel_case_name="custom",
    )
    k.inner.name = "in"
    k.inner.n = 3
    k.inner.color = pb2.RED
    k.nested.inners.add(name="a", n=1)
    k.nested.inners.add()
    k.nested.by_name["x"].n = 9
    k.nested.deeper.inners.add(name="deep")
    k.r_i64.extend([0, -1, 9223372036854775807])
    k.r_text.extend(["", "b", "ü"])
    k.r_color.extend([pb2.RED, 7, pb2.COLOR_UNSPECIFIED])
    k.r_inner.add(name="r1")
    k.r_db.extend([float("inf"), float("-inf"), 0.5])
    k.r_blob.extend([b"", b"\xff"])
    k.r_s32.extend([-1, 1])
    k.r_f64.extend([18446744073709551615])
    k.r_flag.extend([True, False])
    k.r_fl.extend([0.25, -8.0])
    k.m_counts["a"] = 1
    k.m_counts["big"] = -9223372036854775808
    k.m_inner[-5].name = "neg"
    k.m_inner[0].n = 0
    k.m_flags[True] = "yes"
    k.m_flags[False] = ""
    k.m_colors[18446744073709551615] = pb2.GREEN
    k.m_blobs[-3] = b"\x01"
    k.pick_inner.name = "picked"
    k.maybe = 0
    k.when.CopyFrom(timestamp_pb2.Timestamp(seconds=1700000000, nanos=120000000))
    k.how_long.CopyFrom(duration_pb2.Duration(seconds=-1, nanos=-500000000))
    k.extra.update({"num": 1.5, "str": "s", "bool": True, "none": None, "list": [1, "two", {"three": 3}], "obj": {"k": "v"}})
    k.any_value.string_value = "value"
    k.list.extend([1, "x", False])
    k.w_i64.value = -5
    k.w_u32.value = 0
    k.w_text.value = ""
    k.w_flag.value = False
    k.w_db.value = 2.5
    k.w_blob.value = b"wb"
    k.w_fl.value = -0.5
    inner = pb2.Inner(name="packed", n=2, color=pb2.GREEN)
    k.payload.Pack(inner)
    k.payloads.add().Pack(duration_pb2.Duration(seconds=3))
    k.payloads.add().Pack(wrappers_pb2.Int64Value(value=7))
    k.payloads.add().Pack(struct_pb2.Struct())
    k.mask.paths.extend(["text", "inner.name", "r_i64"])
    k.nothing.SetInParent()
    return k


def surprise_kitchen(pb2, extra_pb2):
    """What Surprise returns: an Any whose type only reflection can reveal."""
    k = pb2.Kitchen(text="surprise")
    sticker = extra_pb2.Sticker(label="gold", codes=[1, -2])
    sticker.stuck_at.seconds = 86400
    k.payload.Pack(sticker)
    return k


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gen", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--no-reflection", action="store_true", help="serve Zoo only, without reflection")
    parser.add_argument("--tls-cert", help="PEM certificate: also serve TLS on a second port")
    parser.add_argument("--tls-key", help="PEM private key for --tls-cert")
    args = parser.parse_args()
    sys.path.insert(0, args.gen)

    import grpc
    from google.protobuf import empty_pb2
    from grpc_reflection.v1alpha import reflection

    import extra_pb2
    import peer_pb2
    import peer_pb2_grpc

    class Zoo(peer_pb2_grpc.ZooServicer):
        def Echo(self, request, context):
            metadata = dict(context.invocation_metadata())
            if "x-trace" in metadata:
                context.send_initial_metadata((("x-echo-trace", metadata["x-trace"]),))
                context.set_trailing_metadata((("x-trailer", "done"),))
            return request

        def Fill(self, request, context):
            return sample_kitchen(peer_pb2)

        def Repeat(self, request, context):
            for index in range(request.times):
                item = peer_pb2.Kitchen()
                item.CopyFrom(request.item)
                item.i32 = index
                yield item

        def Collect(self, request_iterator, context):
            summary = peer_pb2.Summary()
            for item in request_iterator:
                summary.count += 1
                summary.texts.append(item.text)
                summary.total_i64 += item.i64
            return summary

        def Chat(self, request_iterator, context):
            for item in request_iterator:
                item.i64 *= 2
                yield item

        def Sleep(self, request, context):
            deadline = time.monotonic() + request.seconds
            while time.monotonic() < deadline and context.is_active():
                time.sleep(0.05)
            return empty_pb2.Empty()

        def Surprise(self, request, context):
            return surprise_kitchen(peer_pb2, extra_pb2)

        def Fail(self, request, context):
            if request.message.startswith("details"):
                # The rich error model: a google.rpc.Status in the grpc-status-details-bin trailer.
                from google.rpc import status_pb2

                status = status_pb2.Status(code=request.code, message=request.message)
                status.details.add().Pack(peer_pb2.Inner(name="why", n=1))
                status.details.add().Pack(extra_pb2.Sticker(label="fetched by reflection"))
                context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
            context.abort(grpc.StatusCode(next(c for c in grpc.StatusCode if c.value[0] == request.code)), request.message)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    peer_pb2_grpc.add_ZooServicer_to_server(Zoo(), server)
    names = (peer_pb2.DESCRIPTOR.services_by_name["Zoo"].full_name, reflection.SERVICE_NAME)
    if not args.no_reflection:
        reflection.enable_server_reflection(names, server)
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    tls_port = None
    if args.tls_cert:
        with open(args.tls_cert, "rb") as f:
            cert = f.read()
        with open(args.tls_key, "rb") as f:
            key = f.read()
        tls_port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, cert)]))
    server.start()
    if tls_port:
        print(f"tls on 127.0.0.1:{tls_port}", flush=True)
    print(f"listening on 127.0.0.1:{port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
