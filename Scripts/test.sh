#!/usr/bin/env bash
# The README's test command (and exactly what CI runs): installs what the tests need, checks that
# the committed protoc-c output matches Protos/, builds, then runs the Swift tests and the
# interop suite against real peers (grpcio, grpcio-reflection, grpcio-health-checking).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. Scripts/lib/swiftpm.sh

Scripts/install-deps.sh --test

echo "== protoc-c output drift check"
Scripts/gen-protos.sh --check

echo "== build"
swiftpm build --build-tests
bin=$(swiftpm build --show-bin-path)

echo "== swift test"
# One test at a time: many suites start real brokers and kill processes, and timing checks
# (deadlines, long polls, expiry) need the two cores not to be saturated by all of them at once.
# The venv first on PATH: the Swift suites that drive Python grpcio as a peer run `python3`, and
# skip themselves where grpcio is not importable (the system python has none).
PATH="$root/.venv/bin:$PATH" swift test --skip-build --no-parallel

echo "== interop (pytest): grpcio, grpcio-reflection, rocketmq-python-client against our processes"
ROCKETMQ_BIN=$bin .venv/bin/python -m pytest -p no:cacheprovider -q Tests/Interop

# A process of its own: these tests load apache.rocketmq.v2 descriptors compiled from our Protos/,
# which would clash in one protobuf pool with the copies rocketmq-python-client ships.
echo "== end-to-end (pytest): real mqnamesrv processes"
ROCKETMQ_BIN=$bin .venv/bin/python -m pytest -p no:cacheprovider -q Tests/EndToEnd
