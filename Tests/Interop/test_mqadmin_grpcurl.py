"""mqadmin's grpcurl-compatible mode against a server it has never seen.

The peer is a Python grpcio server with grpcio-reflection (v1alpha only) serving peerzoo.v1.Zoo
from mqadmin_peer/peer.proto, a schema that exists only on the Python side. mqadmin learns it
through reflection (or from the .proto with -proto), and its JSON output is compared field by
field with Python protobuf's json_format.MessageToDict for the same messages. Every process runs on
127.0.0.1 and every mqadmin run is bounded by a timeout.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import Process, binary, free_port

PEER_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mqadmin_peer")
RUN_TIMEOUT = 30


@pytest.fixture(scope="module")
def peer_modules():
    """peer_pb2 / peer_pb2_grpc generated with grpcio-tools into a temp dir."""
    from grpc_tools import protoc
    import grpc_tools

    out = tempfile.mkdtemp(prefix="mqadmin-peer-py-")
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    args = ["protoc", f"-I{PEER_DIR}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}", "peer.proto", "extra.proto"]
    assert protoc.main(args) == 0, "grpcio-tools could not compile peer.proto"
    sys.path.insert(0, out)
    sys.path.insert(0, PEER_DIR)
    import extra_pb2  # noqa: E402,F401  (generated above; registers Sticker for json_format)
    import peer_pb2  # noqa: E402
    import peer_server  # noqa: E402

    return out, peer_pb2, peer_server


@pytest.fixture(scope="module")
def certificate():
    """A self-signed certificate for localhost / 127.0.0.1 (openssl), as (cert path, key path)."""
    folder = tempfile.mkdtemp(prefix="mqadmin-tls-")
    cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", cert],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


@pytest.fixture(scope="module")
def peer_process(peer_modules, certificate):
    out, _, _ = peer_modules
    cert, key = certificate
    args = [sys.executable, os.path.join(PEER_DIR, "peer_server.py"), "--gen", out, "--port", "0", "--tls-cert", cert, "--tls-key", key]
    server = Process(args, "mqadmin-peer")
    try:
        port = int(server.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))
        tls_port = int(server.wait_for(r"tls on 127\.0\.0\.1:(\d+)").group(1))
        yield f"127.0.0.1:{port}", f"127.0.0.1:{tls_port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def bare_peer(peer_modules):
    """The same server without reflection: only -proto can describe it."""
    out, _, _ = peer_modules
    server = Process([sys.executable, os.path.join(PEER_DIR, "peer_server.py"), "--gen", out, "--no-reflection"], "mqadmin-bare-peer")
    try:
        port = int(server.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))
        yield f"127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def peer(peer_process):
    return peer_process[0]


@pytest.fixture(scope="module")
def tls_peer(peer_process):
    return peer_process[1]


def mqadmin(*args, stdin=None, timeout=RUN_TIMEOUT):
    """Runs mqadmin; returns (exit code, stdout, stderr)."""
    result = subprocess.run(
        [binary("mqadmin"), *args], input=stdin, capture_output=True, text=True, timeout=timeout
    )
    return result.returncode, result.stdout, result.stderr


def json_documents(text):
    """Every JSON document in `text` (mqadmin prints one per response)."""
    decoder = json.JSONDecoder()
    docs, index = [], 0
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index >= len(text):
            return docs
        doc, index = decoder.raw_decode(text, index)
        docs.append(doc)


def to_dict(message, **options):
    from google.protobuf import json_format

    return json_format.MessageToDict(message, **options)


def assert_same_fields(actual, expected, path=""):
    """Field-by-field comparison with a message naming the first difference."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, got {actual!r}"
        assert set(actual) == set(expected), f"{path}: fields differ: extra {set(actual) - set(expected)}, missing {set(expected) - set(actual)}"
        for key in expected:
            assert_same_fields(actual[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{path}: {actual!r} != {expected!r}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same_fields(a, e, f"{path}[{i}]")
    elif isinstance(expected, bool) or isinstance(actual, bool):
        assert actual is expected, f"{path}: {actual!r} != {expected!r}"
    else:
        assert type(actual) in (int, float) if type(expected) in (int, float) else type(actual) is type(expected), f"{path}: {actual!r} is not like {expected!r}"
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


# MARK: list and describe


def test_list_shows_the_peers_services(peer):
    code, out, err = mqadmin("-plaintext", peer, "list")
    assert code == 0, err
    services = out.split()
    assert "peerzoo.v1.Zoo" in services
    assert "grpc.reflection.v1alpha.ServerReflection" in services


def test_list_service_shows_its_methods_in_order(peer):
    code, out, err = mqadmin("-plaintext", peer, "list", "peerzoo.v1.Zoo")
    assert code == 0, err
    assert out.split() == [f"peerzoo.v1.Zoo.{m}" for m in ("Echo", "Fill", "Repeat", "Collect", "Chat", "Sleep", "Fail", "Surprise")]


def test_describe_service_shows_every_call_kind(peer):
    code, out, err = mqadmin("-plaintext", peer, "describe", "peerzoo.v1.Zoo")
    assert code == 0, err
    assert out.startswith("peerzoo.v1.Zoo is a service:\nservice Zoo {\n")
    assert "rpc Echo ( .peerzoo.v1.Kitchen ) returns ( .peerzoo.v1.Kitchen );" in out
    assert "rpc Repeat ( .peerzoo.v1.RepeatRequest ) returns ( stream .peerzoo.v1.Kitchen );" in out
    assert "rpc Collect ( stream .peerzoo.v1.Kitchen ) returns ( .peerzoo.v1.Summary );" in out
    assert "rpc Chat ( stream .peerzoo.v1.Kitchen ) returns ( stream .peerzoo.v1.Kitchen );" in out


def test_describe_message_shows_fields_maps_oneofs_and_wkts(peer):
    code, out, err = mqadmin("-plaintext", peer, "describe", "peerzoo.v1.Kitchen")
    assert code == 0, err
    assert out.startswith("peerzoo.v1.Kitchen is a message:\nmessage Kitchen {")
    for line in (
        "sint64 s64 = 6;",
        "map<uint64, .peerzoo.v1.Color> m_colors = 33;",
        "oneof pick {",
        "optional int32 maybe = 45;",
        ".google.protobuf.Timestamp when = 50;",
        "repeated .google.protobuf.Any payloads = 63;",
        "message Nested {",
    ):
        assert line in out, line


def test_describe_method(peer):
    code, out, err = mqadmin("-plaintext", peer, "describe", "peerzoo.v1.Zoo.Chat")
    assert code == 0, err
    assert out == "peerzoo.v1.Zoo.Chat is a method:\nrpc Chat ( stream .peerzoo.v1.Kitchen ) returns ( stream .peerzoo.v1.Kitchen );\n"


def test_message_template_is_valid_request_data(peer, peer_modules):
    _, pb2, _ = peer_modules
    from google.protobuf import json_format

    code, out, err = mqadmin("-plaintext", "-msg-template", peer, "describe", "peerzoo.v1.Kitchen")
    assert code == 0, err
    template = out.split("\nMessage template:\n", 1)[1]
    parsed = json_format.Parse(template, pb2.Kitchen())
    assert parsed.nested.inners[0] == pb2.Inner() and list(parsed.m_inner) == [0] and parsed.HasField("pick_text")
    assert json.loads(template)["when"] == "1970-01-01T00:00:00Z"
    code, out, err = mqadmin("-plaintext", "-d", template, peer, "peerzoo.v1.Zoo/Echo")
    assert code == 0, err


def test_describe_enum(peer):
    code, out, err = mqadmin("-plaintext", peer, "describe", "peerzoo.v1.Color")
    assert code == 0, err
    assert "peerzoo.v1.Color is an enum:" in out and "BLUE = 3;" in out


# MARK: the four call kinds, compared with json_format.MessageToDict


def test_unary_response_matches_message_to_dict(peer, peer_modules):
    _, pb2, server = peer_modules
    code, out, err = mqadmin("-plaintext", peer, "peerzoo.v1.Zoo/Fill")
    assert code == 0, err
    [actual] = json_documents(out)
    assert_same_fields(actual, to_dict(server.sample_kitchen(pb2)))


def test_emit_defaults_matches_message_to_dict(peer, peer_modules):
    _, pb2, server = peer_modules
    code, out, err = mqadmin("-plaintext", "-emit-defaults", "-d", "{}", peer, "peerzoo.v1.Zoo/Echo")
    assert code == 0, err
    [actual] = json_documents(out)
    assert_same_fields(actual, to_dict(pb2.Kitchen(), always_print_fields_with_no_presence=True))
    code, out, err = mqadmin("-plaintext", "-emit-defaults", peer, "peerzoo.v1.Zoo/Fill")
    assert code == 0, err
    [actual] = json_documents(out)
    assert_same_fields(actual, to_dict(server.sample_kitchen(pb2), always_print_fields_with_no_presence=True))


ECHO_INPUT = {
    "i32": "12",  # numbers may come as strings
    "i64": 9007199254740993,  # and 64-bit ones as numbers
    "u64": "18446744073709551615",
    "s32": -3,
    "s64": "-4",
    "f32": 7,
    "f64": "8",
    "sf32": -9,
    "sf64": "-10",
    "fl": "Infinity",
    "db": "NaN",
    "flag": True,
    "text": "t\u00e9xt",
    "blob": "-_8",  # URL-safe base64, no padding
    "color": 2,  # enum by number
    "inner": {"name": "n", "color": "BLUE"},
    "nested": {"inners": [{"n": 1}, {}], "by_name": {"k": {"n": 2}}, "deeper": {"deeper": {}}},
    "r_i64": ["1", 2, "-3"],
    "rColor": ["RED", 3],
    "r_inner": [{"name": "x"}],
    "rDb": [1.5, "-Infinity"],
    "rBlob": ["AAEC", ""],
    "rS32": [-1, 0, 1],
    "rF64": ["18446744073709551615"],
    "rFlag": [False],
    "rFl": [0.5],
    "mCounts": {"a": "5", "b": -6},
    "m_inner": {"-1": {"n": 1}, "2": {}},
    "mFlags": {"true": "t", "false": "f"},
    "mColors": {"18446744073709551615": "GREEN"},
    "mBlobs": {"-9": "AQ=="},
    "pickNumber": "77",
    "maybe": 0,
    "maybeText": "",
    "when": "2024-02-29T12:00:00.5+02:00",
    "howLong": "-0.000001s",
    "extra": {"a": [1, None, {"b": "c"}], "d": False},
    "anyValue": None,  # null: not set
    "list": [1, "2", [3], {}],
    "wI64": "-9223372036854775808",
    "wU32": 0,
    "wText": "wrapped",
    "wFlag": True,
    "wDb": "NaN",
    "wBlob": "AP8=",
    "wFl": 1.25,
    "payload": {"@type": "type.googleapis.com/peerzoo.v1.Inner", "name": "in any", "color": "RED"},
    "payloads": [
        {"@type": "type.googleapis.com/google.protobuf.Timestamp", "value": "1970-01-01T00:00:01Z"},
        {"@type": "type.googleapis.com/google.protobuf.Struct", "value": {"x": 1}},
        {"@type": "type.googleapis.com/peerzoo.v1.Kitchen", "i32": 1, "payload": {"@type": "type.googleapis.com/google.protobuf.Int32Value", "value": 3}},
    ],
    "mask": "text,inner.name,rI64",
    "nothing": {},
    "customJson": "by json_name",
}


def test_unary_echo_round_trips_every_field_kind(peer, peer_modules):
    _, pb2, _ = peer_modules
    from google.protobuf import json_format

    expected = json_format.Parse(json.dumps(ECHO_INPUT), pb2.Kitchen())
    code, out, err = mqadmin("-plaintext", "-d", json.dumps(ECHO_INPUT), peer, "peerzoo.v1.Zoo/Echo")
    assert code == 0, err
    [actual] = json_documents(out)
    assert_same_fields(actual, to_dict(expected))


def test_original_field_names_are_accepted_and_printed_with_keep_proto_names(peer, peer_modules):
    _, pb2, _ = peer_modules
    request = {"camel_case_name": "x", "r_text": ["a"], "pick_text": "p", "how_long": "1s"}
    code, out, err = mqadmin("-plaintext", "-keep-proto-names", "-d", json.dumps(request), peer, "peerzoo.v1.Zoo/Echo")
    assert code == 0, err
    [actual] = json_documents(out)
    from google.protobuf import json_format

    expected = json_format.Parse(json.dumps(request), pb2.Kitchen())
    assert_same_fields(actual, to_dict(expected, preserving_proto_field_name=True))


def test_server_streaming_prints_every_response(peer, peer_modules):
    _, pb2, _ = peer_modules
    request = {"item": {"text": "s", "i64": "5"}, "times": 3}
    code, out, err = mqadmin("-plaintext", "-d", json.dumps(request), peer, "peerzoo.v1.Zoo/Repeat")
    assert code == 0, err
    docs = json_documents(out)
    assert len(docs) == 3
    for index, doc in enumerate(docs):
        assert_same_fields(doc, to_dict(pb2.Kitchen(text="s", i64=5, i32=index)))


def test_client_streaming_reads_a_stream_of_objects_from_stdin(peer, peer_modules):
    _, pb2, _ = peer_modules
    stdin = '{"text": "a", "i64": "1"}\n{"text": "b", "i64": 2}   {"text": "c", "i64": "-10"}'
    code, out, err = mqadmin("-plaintext", "-d", "@", peer, "peerzoo.v1.Zoo/Collect", stdin=stdin)
    assert code == 0, err
    [actual] = json_documents(out)
    assert_same_fields(actual, to_dict(pb2.Summary(count=3, texts=["a", "b", "c"], total_i64=-7)))


def test_bidirectional_streaming_answers_each_request(peer, peer_modules):
    _, pb2, _ = peer_modules
    stdin = '{"i64": "21", "r_text": ["x"]}{"i64": "-4"}'
    code, out, err = mqadmin("-plaintext", "-d", "@", peer, "peerzoo.v1.Zoo/Chat", stdin=stdin)
    assert code == 0, err
    docs = json_documents(out)
    assert len(docs) == 2
    assert_same_fields(docs[0], to_dict(pb2.Kitchen(i64=42, r_text=["x"])))
    assert_same_fields(docs[1], to_dict(pb2.Kitchen(i64=-8)))


def test_any_of_a_type_outside_the_services_files_is_fetched_by_reflection(peer, peer_modules):
    _, pb2, server = peer_modules
    import extra_pb2
    from google.protobuf import json_format

    code, out, err = mqadmin("-plaintext", peer, "peerzoo.v1.Zoo/Surprise")
    assert code == 0, err
    [actual] = json_documents(out)
    assert_same_fields(actual, to_dict(server.surprise_kitchen(pb2, extra_pb2)))
    assert actual["payload"]["@type"] == "type.googleapis.com/peerzoo.extra.v1.Sticker"

    request = {"payload": {"@type": "type.googleapis.com/peerzoo.extra.v1.Sticker", "label": "in", "stuckAt": "2000-01-01T00:00:00Z"}}
    code, out, err = mqadmin("-plaintext", "-d", json.dumps(request), peer, "peerzoo.v1.Zoo/Echo")
    assert code == 0, err
    [actual] = json_documents(out)
    assert_same_fields(actual, to_dict(json_format.Parse(json.dumps(request), pb2.Kitchen())))


def test_text_format_output_parses_with_python_text_format(peer, peer_modules):
    _, pb2, server = peer_modules
    from google.protobuf import text_format

    code, out, err = mqadmin("-plaintext", "-format", "text", peer, "peerzoo.v1.Zoo/Fill")
    assert code == 0, err
    parsed = text_format.Parse(out, pb2.Kitchen())
    assert parsed == server.sample_kitchen(pb2)


def test_bidirectional_streaming_from_stdin_is_interactive(peer):
    """Each request goes out as soon as it is complete: the first answer arrives while stdin is open."""
    import select

    proc = subprocess.Popen([binary("mqadmin"), "-plaintext", "-d", "@", peer, "peerzoo.v1.Zoo/Chat"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    try:
        proc.stdin.write(b'{"i64": "5", "text": "fi')
        proc.stdin.write(b'rst"}\n')
        received = b""
        deadline = time.monotonic() + 15
        while b"\n}\n" not in received and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.2)
            if ready:
                received += os.read(proc.stdout.fileno(), 4096)
        assert json_documents(received.decode()) == [{"i64": "10", "text": "first"}], "no answer while stdin was open"
        proc.stdin.write(b'{"i64": "-1"}')
        proc.stdin.close()
        rest = b""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                rest += chunk
        assert proc.wait(timeout=15) == 0, proc.stderr.read()
        assert json_documents(rest.decode()) == [{"i64": "-2"}]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_bad_json_midway_through_a_stream_exits_1(peer):
    code, _, err = mqadmin("-plaintext", "-d", "@", peer, "peerzoo.v1.Zoo/Collect", stdin='{"text": "a"} {"text": 5}')
    assert code == 1
    assert 'Error invoking method "peerzoo.v1.Zoo/Collect": error getting request data: .text: expected a string' in err


def test_text_format_input_for_a_stream(peer, peer_modules):
    _, pb2, _ = peer_modules
    from google.protobuf import text_format

    stdin = 'text: "one" i64: 4 inner { n: 2 color: RED } m_counts { key: "k" value: 7 }\x1etext: "two" r_blob: "\\001"'
    code, out, err = mqadmin("-plaintext", "-format", "text", "-d", "@", peer, "peerzoo.v1.Zoo/Chat", stdin=stdin)
    assert code == 0, err
    replies = [text_format.Parse(part, pb2.Kitchen()) for part in out.split("\x1e")]
    first = pb2.Kitchen(text="one", i64=8, inner=pb2.Inner(n=2, color=pb2.RED))
    first.m_counts["k"] = 7
    assert replies == [first, pb2.Kitchen(text="two", r_blob=[b"\x01"])]


def test_verbose_shows_headers_and_trailers(peer):
    code, out, err = mqadmin("-plaintext", "-v", "-H", "x-trace: abc123", "-d", '{"text": "v"}', peer, "peerzoo.v1.Zoo/Echo")
    assert code == 0, err
    assert "Resolved method descriptor:\nrpc Echo ( .peerzoo.v1.Kitchen ) returns ( .peerzoo.v1.Kitchen );" in out
    assert "Request metadata to send:\nx-trace: abc123" in out
    assert "Response headers received:" in out and "x-echo-trace: abc123" in out
    assert "Response trailers received:" in out and "x-trailer: done" in out
    assert "Sent 1 request and received 1 response" in out


def test_proto_files_instead_of_reflection(peer, peer_modules):
    _, pb2, _ = peer_modules
    code, out, err = mqadmin("-import-path", PEER_DIR, "-proto", "peer.proto", "list")
    assert code == 0, err
    assert out.split() == ["peerzoo.v1.Zoo"]
    code, out, err = mqadmin("-plaintext", "-import-path", PEER_DIR, "-proto", "peer.proto", "-d", '{"pickText": "p"}', peer, "peerzoo.v1.Zoo.Echo")
    assert code == 0, err
    [actual] = json_documents(out)
    assert_same_fields(actual, to_dict(pb2.Kitchen(pick_text="p")))


def test_server_without_reflection_needs_proto_files(bare_peer, peer_modules):
    _, pb2, _ = peer_modules
    code, _, err = mqadmin("-plaintext", bare_peer, "list")
    assert code == 1
    assert err == "Failed to list services: server reflection: server does not support the reflection API\n"
    code, out, err = mqadmin("-plaintext", "-import-path", PEER_DIR, "-proto", "peer.proto", "-d", '{"times": 2}', bare_peer, "peerzoo.v1.Zoo/Repeat")
    assert code == 0, err
    assert json_documents(out) == [to_dict(pb2.Kitchen(i32=0)), to_dict(pb2.Kitchen(i32=1))]


def test_protoset_out_then_protoset_in(peer, bare_peer, peer_modules, tmp_path):
    _, pb2, _ = peer_modules
    protoset = str(tmp_path / "zoo.protoset")
    code, _, err = mqadmin("-plaintext", "-protoset-out", protoset, peer, "describe", "peerzoo.v1.Zoo")
    assert code == 0, err
    from google.protobuf import descriptor_pb2

    with open(protoset, "rb") as f:
        written = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    names = [file.name for file in written.file]
    assert names[-1] == "peer.proto" and "google/protobuf/any.proto" in names
    code, out, err = mqadmin("-protoset", protoset, "list")
    assert code == 0, err
    assert out.split() == ["peerzoo.v1.Zoo"]
    code, out, err = mqadmin("-plaintext", "-protoset", protoset, "-d", '{"text": "from protoset"}', bare_peer, "peerzoo.v1.Zoo/Echo")
    assert code == 0, err
    assert json_documents(out) == [to_dict(pb2.Kitchen(text="from protoset"))]
    code, _, err = mqadmin("-protoset", str(tmp_path / "missing.protoset"), "list")
    assert code == 1 and err.startswith("Failed to process proto descriptor sets.")


def test_rpc_and_reflect_headers_go_where_they_belong(peer):
    code, out, err = mqadmin("-plaintext", "-v", "-rpc-header", "x-trace: rpc-only", "-reflect-header", "x-other: refl", "-d", "{}", peer, "peerzoo.v1.Zoo/Echo")
    assert code == 0, err
    assert "Request metadata to send:\nx-trace: rpc-only\n" in out
    assert "x-echo-trace: rpc-only" in out


# MARK: TLS (the default without -plaintext)


def test_tls_with_cacert_verifies_the_server(tls_peer, certificate):
    cert, _ = certificate
    code, out, err = mqadmin("-cacert", cert, tls_peer, "list")
    assert code == 0, err
    assert "peerzoo.v1.Zoo" in out.split()
    code, out, err = mqadmin("-cacert", cert, "-d", '{"text": "over tls"}', tls_peer, "peerzoo.v1.Zoo/Echo")
    assert code == 0, err
    assert json_documents(out) == [{"text": "over tls"}]


def test_tls_insecure_skips_verification(tls_peer):
    code, out, err = mqadmin("-insecure", "-d", '{"i32": 1}', tls_peer, "peerzoo.v1.Zoo/Echo")
    assert code == 0, err
    assert json_documents(out) == [{"i32": 1}]


def test_tls_with_an_untrusted_certificate_fails_to_dial(tls_peer):
    code, _, err = mqadmin("-connect-timeout", "5", tls_peer, "list")
    assert code == 1, err
    assert "Failed" in err


# MARK: bad input: a clear message and grpcurl's exit code, never a crash or a hang


def test_unknown_service_exits_1(peer):
    code, out, err = mqadmin("-plaintext", peer, "peerzoo.v1.Nope/Echo")
    assert code == 1
    assert 'Error invoking method "peerzoo.v1.Nope/Echo": target server does not expose service "peerzoo.v1.Nope"' in err


def test_unknown_method_exits_1(peer):
    code, out, err = mqadmin("-plaintext", peer, "peerzoo.v1.Zoo/Nope")
    assert code == 1
    assert 'service "peerzoo.v1.Zoo" does not include a method named "Nope"' in err


def test_unknown_symbol_in_describe_and_list_exits_1(peer):
    code, _, err = mqadmin("-plaintext", peer, "describe", "peerzoo.v1.Nothing")
    assert code == 1 and 'Failed to resolve symbol "peerzoo.v1.Nothing"' in err
    code, _, err = mqadmin("-plaintext", peer, "list", "peerzoo.v1.Nothing")
    assert code == 1 and 'Failed to list methods for service "peerzoo.v1.Nothing"' in err


@pytest.mark.parametrize(
    "data, fragment",
    [
        ('{"text": "a"', "malformed JSON"),
        ('{"text": "a",}', "malformed JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"flag": "yes"}', ".flag: expected true or false"),
        ('{"i32": 3000000000}', ".i32: 3000000000 is out of range for int32"),
        ('{"i32": 1.5}', ".i32: 1.5 is not an integer"),
        ('{"color": "PURPLE"}', '.color: "PURPLE" is not a value of enum peerzoo.v1.Color'),
        ('{"blob": "%%%"}', "is not valid base64"),
        ('{"inner": {"n": []}}', ".inner.n: expected a number"),
        ('{"r_text": "one"}', ".r_text: expected a JSON array"),
        ('{"when": "tomorrow"}', "is not an RFC 3339 timestamp"),
        ('{"howLong": 5}', "google.protobuf.Duration"),
        ('{"payload": {"@type": "type.googleapis.com/no.such.Type"}}', "no.such.Type"),
        ('{"pickText": "a", "pickNumber": 1}', "same oneof pick"),
        ('{"nope": 1}', 'has no field named "nope"'),
    ],
)
def test_bad_request_data_exits_1_with_a_clear_message(peer, data, fragment):
    code, out, err = mqadmin("-plaintext", "-d", data, peer, "peerzoo.v1.Zoo/Echo")
    assert code == 1, (out, err)
    assert 'Error invoking method "peerzoo.v1.Zoo/Echo": error getting request data:' in err
    assert fragment in err, err


def test_two_messages_for_a_unary_method_exits_1(peer):
    code, _, err = mqadmin("-plaintext", "-d", "{} {}", peer, "peerzoo.v1.Zoo/Echo")
    assert code == 1 and "is a unary RPC, but request data contained 2 messages" in err


def test_unreachable_host_exits_1(peer):
    port = free_port()
    started = time.monotonic()
    code, _, err = mqadmin("-plaintext", "-connect-timeout", "2", f"127.0.0.1:{port}", "list")
    assert code == 1
    assert f'Failed to dial target host "127.0.0.1:{port}"' in err
    assert time.monotonic() - started < 10
    code, _, err = mqadmin("-plaintext", "-import-path", PEER_DIR, "-proto", "peer.proto", f"127.0.0.1:{port}", "peerzoo.v1.Zoo/Echo")
    assert code == 1 and "Failed to dial target host" in err


def test_deadline_exits_64_plus_deadline_exceeded(peer):
    started = time.monotonic()
    code, _, err = mqadmin("-plaintext", "-max-time", "1", "-d", '{"seconds": 10}', peer, "peerzoo.v1.Zoo/Sleep")
    elapsed = time.monotonic() - started
    assert code == 64 + 4, err
    assert err.startswith("ERROR:\n  Code: DeadlineExceeded\n  Message: ")
    assert elapsed < 6, f"the deadline was not enforced: {elapsed:.1f}s"


@pytest.mark.parametrize("status, name", [(3, "InvalidArgument"), (5, "NotFound"), (7, "PermissionDenied"), (14, "Unavailable")])
def test_rpc_status_exits_64_plus_code(peer, status, name):
    request = json.dumps({"code": status, "message": f"failing with {name}"})
    code, out, err = mqadmin("-plaintext", "-d", request, peer, "peerzoo.v1.Zoo/Fail")
    assert code == 64 + status, err
    assert err == f"ERROR:\n  Code: {name}\n  Message: failing with {name}\n"
    assert out == ""


def test_rich_status_details_are_printed_like_grpcurl(peer):
    # The peer builds google.rpc.Status with googleapis-common-protos (installed with the grpcio stack).
    pytest.importorskip("google.rpc.status_pb2")
    request = json.dumps({"code": 9, "message": "details attached"})
    code, out, err = mqadmin("-plaintext", "-d", request, peer, "peerzoo.v1.Zoo/Fail")
    assert code == 64 + 9, err
    assert err == (
        "ERROR:\n  Code: FailedPrecondition\n  Message: details attached\n  Details:\n"
        "  1)\t{\n"
        '    \t  "@type": "type.googleapis.com/peerzoo.v1.Inner",\n'
        '    \t  "name": "why",\n'
        '    \t  "n": 1\n'
        "    \t}\n"
        "  2)\t{\n"
        '    \t  "@type": "type.googleapis.com/peerzoo.extra.v1.Sticker",\n'
        '    \t  "label": "fetched by reflection"\n'
        "    \t}\n"
    )


def test_a_closed_stdout_ends_quietly(peer):
    """`mqadmin … | head -1`: the reader goes away before mqadmin writes; no crash report."""
    proc = subprocess.Popen([binary("mqadmin"), "-plaintext", peer, "describe"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    _, err = proc.communicate(timeout=RUN_TIMEOUT)
    assert proc.returncode in (0, 1), err
    assert b"Fatal error" not in err and b"crashed" not in err, err


@pytest.mark.parametrize(
    "args, fragment",
    [
        ([], "Too few arguments."),
        (["-format", "xml", "127.0.0.1:1", "list"], "The -format option must be 'json' or 'text'."),
        (["describe"], "No host:port specified"),
        (["127.0.0.1:1", "list", "a", "b"], "Too many arguments."),
        (["-no-such-flag", "127.0.0.1:1", "list"], "no-such-flag"),
        (["nohost", "list"], "Invalid target"),
    ],
)
def test_usage_errors_exit_2(args, fragment):
    code, _, err = mqadmin(*args)
    assert code == 2, err
    assert fragment in err


def test_plaintext_client_against_our_rpc_interop_server(interop_server):
    code, out, err = mqadmin("-plaintext", interop_server, "list")
    assert code == 0, err
    assert "grpc.testing.TestService" in out.split()
    code, out, err = mqadmin("-plaintext", "-d", '{"responseSize": 3}', interop_server, "grpc.testing.TestService/UnaryCall")
    assert code == 0, err
    assert json_documents(out) == [{"payload": {"body": "AAAA"}}]
