#!/usr/bin/env bash
# RPC benchmark, one run on one machine, written to the "RPC" section of BENCHMARKS.md:
#   1. h2load posting a gRPC-framed UnaryCall (1 KiB request, 1 KiB reply) at our rpc-interop server,
#      vs the same h2load command at nghttpd answering with a file of our reply's size (the HTTP/2
#      ceiling for the same work), vs nghttpd answering a 1 KiB GET, vs a grpcio (Python) server;
#   2. our client -> our server, unary and server-streaming, vs grpcio client -> grpcio server.
# Release build. Loopback only. Targets: ours >= 60% of nghttpd; our client+server >= 3x grpcio's.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
Scripts/install-deps.sh --test
swift build -c release --product rpc-interop >/dev/null
bin=$(swift build -c release --show-bin-path)
py=$root/.venv/bin/python
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

N=${N:-200000}          # h2load requests
C=${C:-10}              # h2load connections
M=${M:-10}              # h2load streams per connection
CALLS=${CALLS:-100000}  # client benchmark calls
CONC=${CONC:-64}        # client benchmark concurrency

source "$root/Scripts/lib/bench_common.sh"
cpu_seconds() { awk '{print ($14+$15)/100}' "/proc/$1/stat"; }
rss_mib() { awk '/VmHWM/{printf "%.0f", $2/1024}' "/proc/$1/status"; }

# Servers. The target compares like with like: our server on one event loop against nghttpd's
# default of one worker thread (h2load takes the other core). Also measured: both with one thread
# per core, our default (one loop per core) against nghttpd's default, and the generated async
# handler path instead of UnaryCall's immediate handler.
cores=$(nproc)
serve() {  # name, extra rpc-interop server options...
  local name=$1; shift
  local port; port=$(free_port)
  "$bin/rpc-interop" server --port "$port" "$@" >"$work/$name.log" 2>&1 & pids+=($!)
  eval "${name}_pid=$! ${name}_port=$port"
}
serve ours --event-loops 1
serve oursn
serve oursasync --event-loops 1 --async-unary
py_port=$(free_port); "$py" Scripts/lib/grpc_bench.py server "$py_port" >"$work/py.log" 2>&1 & pysrv=$!; pids+=($pysrv)
mkdir -p "$work/htdocs"; head -c 1024 /dev/zero > "$work/htdocs/1k"
ng_port=$(free_port); nghttpd --no-tls -d "$work/htdocs" "$ng_port" >"$work/nghttpd.log" 2>&1 & pids+=($!)
ngn_port=$(free_port); nghttpd --no-tls -n "$cores" -d "$work/htdocs" "$ngn_port" >"$work/nghttpdn.log" 2>&1 & pids+=($!)
for name in ours oursn oursasync; do wait_line "$work/$name.log" "listening on"; done
wait_line "$work/py.log" "listening on"; sleep 0.5
ours=$ours_pid  # the target run's server
# The issue's shape: a gRPC-framed 1 KiB request (SimpleRequest with a 1 KiB payload, asking for
# a 1 KiB reply). Also measured: the small request (no payload, only the reply size), which
# was the only request here before 2026-11-26.
"$py" Scripts/lib/grpc_bench.py request "$work/request.bin" 1024 1024
"$py" Scripts/lib/grpc_bench.py request "$work/small.bin" 1024

h2() { h2load -n "$N" -c "$C" -m "$M" "$@" 2>&1; }
grpc_headers=(-H 'content-type: application/grpc' -H 'te: trailers')
grpc_h2() { h2 "${grpc_headers[@]}" -d "$work/${2:-request}.bin" "http://127.0.0.1:$1/grpc.testing.TestService/UnaryCall"; }
# The ceiling for the same work: the identical h2load command (same headers, the same framed
# request as its body) at nghttpd, which reads the body and answers with a file of exactly our
# reply's DATA size. A 1 KiB GET (no request body) is measured too: nghttpd does less for it,
# and h2load (on the other core) sends no body.
h2load -n 1000 -c 1 -m 1 "${grpc_headers[@]}" -d "$work/request.bin" "http://127.0.0.1:$ours_port/grpc.testing.TestService/UnaryCall" > "$work/h2-size.txt" 2>&1
reply=$(reply_bytes "$work/h2-size.txt")
# Checked against the reply's size computed on its own: a server answering the sizing run with
# errors would otherwise set the size every later run is checked against.
expected=$("$py" Scripts/lib/grpc_bench.py reply-size 1024)
[ "$reply" = "$expected" ] || { echo "bench-rpc.sh: our server's replies carry $reply DATA bytes, a UnaryCall reply has $expected" >&2; exit 1; }
head -c "$reply" /dev/zero > "$work/htdocs/reply"
ng_post() { h2 "${grpc_headers[@]}" -d "$work/${2:-request}.bin" "http://127.0.0.1:$1/reply"; }
ng_get() { h2 "http://127.0.0.1:$ng_port/1k"; }

# The target pair runs ROUNDS times, alternating, and each side's median counts: on two shared
# cores one run swings by ±10%.
ROUNDS=${ROUNDS:-3}
[ "$ROUNDS" -ge 1 ] || { echo "ROUNDS must be at least 1" >&2; exit 2; }
cpu_ours_h2=0  # our server's CPU seconds over its target-row runs
round() {  # r: every run of a round, in the order given
  local r=$1; shift
  for run in "$@"; do
    case $run in
      ours)
        local c0; c0=$(cpu_seconds "$ours")
        grpc_h2 "$ours_port" > "$work/h2-ours-$r.txt"
        cpu_ours_h2=$(python3 -c "print($cpu_ours_h2 + $(cpu_seconds "$ours") - $c0)") ;;
      ngpost) ng_post "$ng_port" > "$work/h2-ngpost-$r.txt" ;;
      ourssmall) grpc_h2 "$ours_port" small > "$work/h2-ourssmall-$r.txt" ;;
      ngsmall) ng_post "$ng_port" small > "$work/h2-ngsmall-$r.txt" ;;
      ngget) ng_get > "$work/h2-nghttpd-$r.txt" ;;
    esac
  done
}
for r in $(seq 1 "$ROUNDS"); do
  # ABBA: the order reverses every other round, so drift within a round favours neither side.
  if [ $((r % 2)) = 1 ]; then round "$r" ours ngpost ourssmall ngsmall ngget
  else round "$r" ngget ngsmall ourssmall ngpost ours; fi
done
cpu_ours_h2=$(python3 -c "print($cpu_ours_h2 / $ROUNDS)")
grpc_h2 "$oursn_port" > "$work/h2-oursn.txt"
ng_post "$ngn_port" > "$work/h2-nghttpdn.txt"
grpc_h2 "$oursasync_port" > "$work/h2-oursasync.txt"
h2load -n $((N / 10)) -c "$C" -m "$M" "${grpc_headers[@]}" -d "$work/request.bin" \
  "http://127.0.0.1:$py_port/grpc.testing.TestService/UnaryCall" > "$work/h2-grpcio.txt" 2>&1

# Client + server
cpu0=$(cpu_seconds "$oursn_pid")
"$bin/rpc-interop" bench --server-port "$oursn_port" --mode unary --count "$CALLS" --concurrency "$CONC" > "$work/ours-unary.json"
"$bin/rpc-interop" bench --server-port "$oursn_port" --mode streaming --count $((CALLS * 4)) --concurrency 8 > "$work/ours-stream.json"
cpu_ours_client=$(python3 -c "print($(cpu_seconds "$oursn_pid") - $cpu0)")
"$py" Scripts/lib/grpc_bench.py client "$py_port" unary $((CALLS / 5)) "$CONC" 1024 > "$work/py-unary.json"
"$py" Scripts/lib/grpc_bench.py client "$py_port" streaming $((CALLS * 4 / 5)) 8 1024 > "$work/py-stream.json"
rss_ours=$(rss_mib "$oursn_pid"); rss_py=$(rss_mib "$pysrv")

REPLY=$reply ROUNDS=$ROUNDS CORES=$cores WORK=$work CPU_OURS_H2=$cpu_ours_h2 CPU_OURS_CLIENT=$cpu_ours_client RSS_OURS=$rss_ours RSS_PY=$rss_py \
N=$N C=$C M=$M python3 - "$root/BENCHMARKS.md" <<'PY'
import json, os, re, statistics, subprocess, sys, datetime
md = sys.argv[1]
w = os.environ["WORK"]
sys.path.insert(0, os.path.join(os.path.dirname(md), "Scripts", "lib"))
from benchmarks_md import check_replies, h2load_result, last_json_line, replace_section
def rps(name): return h2load_result(f"{w}/{name}")
reply = int(os.environ["REPLY"])
for name in os.listdir(w):  # every run of ours answered with real replies, not errors
    if name.startswith("h2-ours"): check_replies(f"{w}/{name}", reply)
def js(name): return last_json_line(f"{w}/{name}")
rounds = int(os.environ["ROUNDS"])
runs = range(1, rounds + 1)
our_runs = [rps(f"h2-ours-{r}.txt") for r in runs]; small_runs = [rps(f"h2-ourssmall-{r}.txt") for r in runs]
post = [rps(f"h2-ngpost-{r}.txt")[0] for r in runs]; get = [rps(f"h2-nghttpd-{r}.txt")[0] for r in runs]
post_small = [rps(f"h2-ngsmall-{r}.txt")[0] for r in runs]
ours = statistics.median(o[0] for o in our_runs); ngp = statistics.median(post); ng = statistics.median(get)
small = statistics.median(o[0] for o in small_runs); ngs = statistics.median(post_small)
ours_ok = min(o[1] for o in our_runs + small_runs)
per_round = lambda mine, refs: ", ".join(f"{o[0] / n * 100:.0f}%" for o, n in zip(mine, refs))
gp, _ = rps("h2-grpcio.txt")
oursn, _ = rps("h2-oursn.txt"); ngn, _ = rps("h2-nghttpdn.txt"); oasync, _ = rps("h2-oursasync.txt")
cores_n = os.environ["CORES"]
ou, os_ = js("ours-unary.json"), js("ours-stream.json")
pu, ps = js("py-unary.json"), js("py-stream.json")
sh = lambda c: subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
N, C, M = os.environ["N"], os.environ["C"], os.environ["M"]
cores = sh("nproc")
cpu = sh("lscpu | sed -n 's/^Model name: *//p'")
swift = sh("swift --version 2>&1 | head -1")
h2v = sh("h2load --version | head -1")
ngv = sh("nghttpd --version | head -1")
venv_python = os.path.join(os.path.dirname(md), ".venv/bin/python")
grpcv = sh(venv_python + " -c 'import grpc; print(grpc.__version__)'")
L = ["## RPC", "",
     f"Measured {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC by `Scripts/bench-rpc.sh` (every figure from the same run, release build, loopback).", "",
     f"- Machine: {cores} cores ({cpu}), shared with other work; read the ratios",
     f"- Versions: {swift}; {h2v}; nghttpd {ngv}; grpcio {grpcv}",
     f"- Servers: `rpc-interop server --event-loops 1` (UnaryCall registered as an immediate handler, answered on the event loop with no task; `--async-unary` keeps the generated async registration) and `nghttpd --no-tls` (one worker thread by default); the rows below the first change one thing each",
     f"- h2load: `h2load -n {N} -c {C} -m {M}`, gRPC requests POSTed to `/grpc.testing.TestService/UnaryCall`: the issue's 1 KiB request (a framed `grpc.testing.SimpleRequest` with a 1 KiB payload and `response_size: 1024`), and the small request (`response_size` only: 3 bytes, 8 framed). The HTTP/2 ceiling is nghttpd (no gRPC framing, no protobuf, C) given the same work: the identical h2load command, the same request as its body, answered with a {reply}-byte file (our reply's DATA). A 1 KiB GET, which spares nghttpd and h2load any request body, is measured too; it was the reference until 2026-11-26. Every run of ours is checked to have answered {reply} DATA bytes per call, the size of a UnaryCall reply computed apart (a gRPC error, which h2load counts as a success, has another size)",
     "- Client benchmarks: `rpc-interop bench` (our client → our server at its default, one event loop per core) and `Scripts/lib/grpc_bench.py client` (grpcio.aio client → grpcio.aio server), 1 KiB responses", "",
     "| Scenario | rocketmq-swift | Reference | Ratio | Target | Met |", "|---|---|---|---|---|---|",
     f"| h2load unary, 1 KiB request, 1 KiB reply, one event loop (median of {rounds} alternating runs, each {ours_ok:,}+ succeeded; per run {per_round(our_runs, post)}) | {ours:,.0f} req/s | nghttpd, the same request POSTed, {reply}-byte reply, one thread (its default): {ngp:,.0f} req/s | {ours/ngp*100:.0f}% | ≥ 60% | {'yes' if ours/ngp >= 0.6 else 'no'} |",
     f"| the same with the small request (per run {per_round(small_runs, post_small)}) | {small:,.0f} req/s | nghttpd, the small request POSTed: {ngs:,.0f} req/s | {small/ngs*100:.0f}% | — | |",
     f"| the small request against nghttpd answering a 1 KiB GET (no request body; per run {per_round(small_runs, get)}) | {small:,.0f} req/s | nghttpd 1 KiB GET, one thread: {ng:,.0f} req/s | {small/ng*100:.0f}% | — | |",
     f"| the 1 KiB request, one thread per core ({cores_n}) on both sides | {oursn:,.0f} req/s | nghttpd `-n {cores_n}`: {ngn:,.0f} req/s | {oursn/ngn*100:.0f}% | — | |",
     f"| the 1 KiB request, our default ({cores_n} loops) against nghttpd's (1 thread) | {oursn:,.0f} req/s | {ngp:,.0f} req/s | {oursn/ngp*100:.0f}% | — | |",
     f"| the 1 KiB request, one event loop, generated async handler (`--async-unary`) | {oasync:,.0f} req/s | {ngp:,.0f} req/s | {oasync/ngp*100:.0f}% | — | |",
     f"| h2load unary against grpcio's server (same request) | {ours:,.0f} req/s | grpcio (Python) server: {gp:,.0f} req/s | {ours/gp:.1f}× | — | |",
     f"| Client+server unary, {ou['concurrency']} concurrent callers | {ou['rate']:,.0f} calls/s, p50 {ou['p50_us']:.0f} µs, p99 {ou['p99_us']:.0f} µs | grpcio client+server: {pu['rate']:,.0f} calls/s, p50 {pu['p50_us']:.0f} µs, p99 {pu['p99_us']:.0f} µs | {ou['rate']/pu['rate']:.1f}× | ≥ 3× | {'yes' if ou['rate']/pu['rate'] >= 3 else 'no'} |",
     f"| Client+server server-streaming, {os_['concurrency']} streams | {os_['rate']:,.0f} msgs/s, p50 gap {os_['p50_us']:.0f} µs, p99 {os_['p99_us']:.0f} µs | grpcio: {ps['rate']:,.0f} msgs/s | {os_['rate']/ps['rate']:.1f}× | — | |",
     "",
     f"Our server's CPU time: {float(os.environ['CPU_OURS_H2']):.1f} s per h2load run of the target pair, {float(os.environ['CPU_OURS_CLIENT']):.1f} s for both client benchmarks; peak RSS of our server {os.environ['RSS_OURS']} MiB, of the grpcio server {os.environ['RSS_PY']} MiB.",
     ""]
replace_section(md, "RPC", "\n".join(L))
PY
