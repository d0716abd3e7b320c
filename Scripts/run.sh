#!/usr/bin/env bash
# The README's "run it" command: installs build dependencies, builds in release mode and starts a
# single local node — a NameServer, a broker and the web console in one process, data under ./data:
#   broker      127.0.0.1:${BROKER_PORT:-8081}   (apache.rocketmq.v2, health, reflection)
#   NameServer  127.0.0.1:${NAMESRV_PORT:-9876}  (registry, QueryRoute for clients)
#   console     http://127.0.0.1:${CONSOLE_PORT:-8080}/  (topics, groups and lag, message lookup, configuration)
# Point official RocketMQ 5 clients at either endpoint. Topics and groups are created on first use.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. Scripts/lib/swiftpm.sh
Scripts/install-deps.sh
swiftpm build -c release --product mqbroker
exec "$(swiftpm build -c release --show-bin-path)/mqbroker" --dev --data "${DATA_DIR:-./data}" \
  --port "${BROKER_PORT:-8081}" --namesrv-port "${NAMESRV_PORT:-9876}" --console-port "${CONSOLE_PORT:-8080}" "$@"
