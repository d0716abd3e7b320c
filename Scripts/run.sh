#!/usr/bin/env bash
# The README's "run it" command: installs build dependencies, builds in release mode and starts
# a single local node. Until the broker lands (issue 4), that node is the gRPC interop server
# with health and reflection, on 127.0.0.1:${PORT:-50051}.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
Scripts/install-deps.sh
swift build -c release --product rpc-interop
exec "$(swift build -c release --show-bin-path)/rpc-interop" server --port "${PORT:-50051}" --host 127.0.0.1
