"""Shared fixtures for the interop suite: real processes of ours, real peers nobody here wrote.

ROCKETMQ_BIN names the folder with our executables (Scripts/test.sh sets it from
`swift build --show-bin-path`). Every process is started on 127.0.0.1 and killed at the end.
"""
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROTOS = os.path.join(ROOT, "Protos")


def binary(name):
    folder = os.environ.get("ROCKETMQ_BIN") or os.path.join(ROOT, ".build", "debug")
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        pytest.fail(f"{path} is missing: build first (Scripts/test.sh does)")
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A child process whose output goes to a log file; `wait_for` reads it with a bounded wait."""

    def __init__(self, args, name):
        self.log = tempfile.NamedTemporaryFile(prefix=name + "-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        self.name = name

    def output(self):
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def wait_for(self, pattern, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.output())
            if match:
                return match
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{self.name} did not print {pattern!r} within {timeout}s:\n{self.output()[-4000:]}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def grpc_testing_modules():
    """grpc.testing Python stubs generated from our Protos/ with grpcio-tools (Scripts/lib/grpc_bench.py)."""
    sys.path.insert(0, os.path.join(ROOT, "Scripts", "lib"))
    import grpc_bench
    return grpc_bench.load_stubs()


@pytest.fixture(scope="module", params=[(), ("--async-unary", "--event-loops", "1")], ids=["immediate-unary", "async-unary"])
def interop_server(request):
    """Our rpc-interop server on a free loopback port, with UnaryCall served both ways: by its
    immediate handler (the default) and by the generated async handler on one event loop."""
    server = Process([binary("rpc-interop"), "server", "--port", "0", *request.param], "rpc-interop-server")
    try:
        port = int(server.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))
        yield f"127.0.0.1:{port}"
    finally:
        server.stop()


class Broker:
    """A real `mqbroker` process on a free loopback port, restartable on the same data directory."""

    def __init__(self, data_dir, config=None, extra=()):
        self.data_dir = data_dir
        self.port = free_port()
        self.config_path = None
        if config is not None:
            import json
            self.config_path = os.path.join(os.path.dirname(data_dir), os.path.basename(data_dir) + "-config.json")
            with open(self.config_path, "w") as f:
                json.dump(config, f)
        self.extra = list(extra)
        self.process = None
        self.start()

    @property
    def endpoint(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        args = [binary("mqbroker"), "--data", self.data_dir, "--port", str(self.port), "--segment-size", str(64 << 20)]
        if self.config_path:
            args += ["--config", self.config_path]
        self.process = Process(args + self.extra, "mqbroker")
        self.process.wait_for(r"mqbroker listening on")

    def kill(self):
        """SIGKILL: no shutdown hook runs, as in a crash."""
        self.process.proc.kill()
        self.process.proc.wait(timeout=10)

    def stop(self):
        self.process.stop()


@pytest.fixture
def broker_factory(tmp_path):
    started = []

    def make(config=None, extra=()):
        broker = Broker(str(tmp_path / f"broker{len(started)}"), config, extra)
        started.append(broker)
        return broker

    yield make
    for broker in started:
        broker.stop()


class Etcd:
    """A real etcd server (Debian's etcd-server) on free loopback ports, restartable on its data."""

    def __init__(self, data_dir):
        import shutil
        self.binary = shutil.which("etcd") or "/usr/bin/etcd"
        if not os.path.exists(self.binary):
            pytest.fail("etcd is missing: apt-get install etcd-server (Scripts/install-deps.sh --test does)")
        self.data_dir = data_dir
        self.port, self.peer_port = free_port(), free_port()
        self.process = None
        self.start()

    @property
    def endpoint(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        client, peer = f"http://127.0.0.1:{self.port}", f"http://127.0.0.1:{self.peer_port}"
        self.process = Process([
            self.binary, "--name", "test", "--data-dir", self.data_dir,
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"test={peer}", "--log-level", "warn",
        ], "etcd")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"etcd did not listen:\n{self.process.output()[-3000:]}")

    def kill(self):
        self.process.stop()


@pytest.fixture
def etcd(tmp_path):
    server = Etcd(str(tmp_path / "etcd"))
    yield server
    server.kill()
