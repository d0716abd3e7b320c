#!/usr/bin/env bash
# Instructions per message, counted by valgrind's callgrind: the one measure on this shared,
# noisy machine that repeats to the instruction, whatever else runs. Prints, for the release build
# of the current tree (or of BIN=<dir> holding mqbroker and mqbench):
#   - broker: instructions per SendMessage of a 1 KiB message, async flush, one event loop,
#     driven by h2load (10 connections' worth of streams: 2 x 5) with the fixed request bench.sh
#     uses; counted only over N requests after a 3,000-request warm-up (callgrind_control);
#   - client: instructions per send of `mqbench produce --mode sync --concurrency 50
#     --connections 4 --client-threads 1` (bench.sh's produce client) against a broker running
#     outside valgrind: the difference between a 6,000- and a 2,000-message run, over 4,000.
# Profiles stay in OUT (default: a temporary directory, printed) for callgrind_annotate.
#
# Needs VALGRIND=<path to valgrind> of version 3.24 or later. Debian 12's 3.19 cannot read Swift
# 6.3's DWARF 5, and every valgrind up to at least 3.24 dies here with an internal SIGSEGV in its
# rt_sigsuspend wrapper, which removes its own signal from the caller's mask in place: the Swift
# runtime passes a mask in read-only memory. Changing the wrapper (coregrind/m_syswrap/
# syswrap-linux.c, PRE(sys_rt_sigsuspend)) to edit a copy of the mask and pass the copy to the
# kernel fixes it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
valgrind=${VALGRIND:?set VALGRIND to a valgrind 3.24+ binary (see the comment at the top)}
annotate=$(dirname "$valgrind")/callgrind_annotate
control=$(dirname "$valgrind")/callgrind_control
N=${N:-5000}
if [ -z "${BIN:-}" ]; then
  swift build -c release --product mqbroker >/dev/null
  swift build -c release --product mqbench >/dev/null
  BIN=$(swift build -c release --show-bin-path)
fi
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
py=$root/.venv/bin/python
source "$root/Scripts/lib/bench_common.sh"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.3; rm -rf "$work"; }
trap cleanup EXIT
total() { "$annotate" "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'; }

"$py" - "$work/send.bin" <<'PY'
import struct, sys
from rocketmq.grpc_protocol import definition_pb2 as d, service_pb2 as s
m = d.Message(topic=d.Resource(name="h2load"), body=b"a" * 1024,
              system_properties=d.SystemProperties(message_id="0123456789abcdef0123456789abcdef", message_type=d.NORMAL, body_encoding=d.IDENTITY))
body = s.SendMessageRequest(messages=[m]).SerializeToString()
open(sys.argv[1], "wb").write(struct.pack(">BI", 0, len(body)) + body)
PY
h2_send() { # port count
  h2load -n "$2" -c 2 -m 5 -H 'content-type: application/grpc' -H 'te: trailers' -H 'x-mq-client-id: h2load' \
    -d "$work/send.bin" "http://127.0.0.1:$1/apache.rocketmq.v2.MessagingService/SendMessage" > "$work/h2load.txt" 2>&1
  grep -q "$2 succeeded" "$work/h2load.txt" || { echo "bench-callgrind.sh: h2load failed:" >&2; tail -5 "$work/h2load.txt" >&2; exit 1; }
}

# 1. The broker under callgrind, instrumented only while the measured requests run.
port=$(free_port)
"$valgrind" --tool=callgrind --instr-atstart=no --callgrind-out-file="$out/broker.%p" \
  "$BIN/mqbroker" --data "$work/broker" --port "$port" --flush async --auto-create --event-loops 1 >"$work/broker.log" 2>&1 &
vpid=$!; pids+=("$vpid")
wait_line "$work/broker.log" "mqbroker listening on"
h2_send "$port" 3000
"$control" -i on "$vpid" >/dev/null
h2_send "$port" "$N"
"$control" -d "$vpid" >/dev/null
kill "$vpid"; wait "$vpid" 2>/dev/null || true
profile=$(ls -S "$out"/broker.*.1 2>/dev/null | head -1)
[ -n "$profile" ] || { echo "bench-callgrind.sh: no broker profile" >&2; exit 1; }
echo "broker: $(( $(total "$profile") / N )) instructions per SendMessage ($N requests; $profile)"

# 2. mqbench under callgrind against a broker outside it.
port=$(free_port)
"$BIN/mqbroker" --data "$work/target" --port "$port" --flush async --auto-create >"$work/target.log" 2>&1 &
pids+=($!)
wait_line "$work/target.log" "mqbroker listening on"
for n in 2000 6000; do
  "$valgrind" --tool=callgrind --callgrind-out-file="$out/client.$n" "$BIN/mqbench" produce --endpoint "127.0.0.1:$port" \
    --topic callgrind --count "$n" --concurrency 50 --connections 4 --client-threads 1 --mode sync --json > "$work/client-$n.json" 2>/dev/null
  grep -q '"errors":{}' "$work/client-$n.json" || { echo "bench-callgrind.sh: mqbench reported errors:" >&2; cat "$work/client-$n.json" >&2; exit 1; }
done
echo "client: $(( ($(total "$out/client.6000") - $(total "$out/client.2000")) / 4000 )) instructions per send (mqbench produce, sync, 50 senders; $out/client.{2000,6000})"
