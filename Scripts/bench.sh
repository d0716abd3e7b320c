#!/usr/bin/env bash
# The cluster benchmark, one run on one machine, written to the "Cluster" section of BENCHMARKS.md
# as ratios against references measured in the same run:
#   fio (disk ceiling), h2load -> nghttpd (HTTP/2 ceiling), h2load -> mqbroker SendMessage,
#   redis-server streams (redis-benchmark XADD, appendfsync everysec and always),
#   mqbench produce (async and sync flush brokers), consume, e2e, and broker RSS idle with
#   1,000 topics x 8 queues. Release build, loopback only. Needs apt: fio, redis-server, redis-tools.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
Scripts/install-deps.sh --test
for package in fio redis-server redis-tools; do
  dpkg -s "$package" >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fio redis-server redis-tools >/dev/null; break; }
done
swift build -c release --product mqbroker >/dev/null
swift build -c release --product mqbench >/dev/null
bin=$(swift build -c release --show-bin-path)
# CPU time the hypervisor took from this VM (steal) over the run: a run with much of it is noisy.
cpu_start=$(head -1 /proc/stat)
py=$root/.venv/bin/python
work=$(mktemp -d -p "$root/.build" bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.5; rm -rf "$work"; }
trap cleanup EXIT

COUNT=${COUNT:-200000}   # messages per produce run
CONC=${CONC:-50}         # concurrent senders, redis-benchmark clients, h2load streams in total
SIZE=1024

source "$root/Scripts/lib/bench_common.sh"
start_broker() { # name flush [extra...]
  local name=$1 flush=$2; shift 2
  local port; port=$(free_port)
  "$bin/mqbroker" --data "$work/$name" --port "$port" --flush "$flush" --auto-create --admin-token bench "$@" >"$work/$name.log" 2>&1 &
  local pid=$!  # the caller adds it to pids: this runs in a subshell
  wait_line "$work/$name.log" "mqbroker listening on"
  echo "$pid $port"
}

# 1. Disk ceiling.
fio --name=seq --directory="$work" --rw=write --bs=1k --size=512m --ioengine=psync --output-format=json > "$work/fio-seq.json"
fio --name=sync --directory="$work" --rw=write --bs=1k --size=64m --fdatasync=1 --runtime=8 --time_based --ioengine=psync --output-format=json > "$work/fio-sync.json"
rm -f "$work"/seq.* "$work"/sync.*
# 2. HTTP/2 ceiling and the broker's server capacity without client overhead.
mkdir -p "$work/htdocs"; head -c $SIZE /dev/zero > "$work/htdocs/1k"
ng_port=$(free_port); nghttpd --no-tls -d "$work/htdocs" "$ng_port" >"$work/nghttpd.log" 2>&1 & pids+=($!)
read -r async_pid async_port < <(start_broker async async)
pids+=("$async_pid")
# Like with like for the server-capacity row: one event loop against nghttpd's one worker
# thread (h2load has the other core). The default broker (one loop per core) is measured too.
read -r one_pid one_port < <(start_broker one async --event-loops 1)
pids+=("$one_pid")
"$py" - "$work/send.bin" <<'PY'
import struct, sys, uuid
from rocketmq.grpc_protocol import definition_pb2 as d, service_pb2 as s
m = d.Message(topic=d.Resource(name="h2load"), body=b"a" * 1024,
              system_properties=d.SystemProperties(message_id=uuid.uuid4().hex, message_type=d.NORMAL, body_encoding=d.IDENTITY))
body = s.SendMessageRequest(messages=[m]).SerializeToString()
open(sys.argv[1], "wb").write(struct.pack(">BI", 0, len(body)) + body)
PY
# Steady state before any measured send. A broker keeps the newest GiB of its CommitLog in the
# page cache (`--page-cache-window`, 1024 MiB by default) and drops what is older once flushed;
# new writes then reuse the freed pages. Until a broker has written its first GiB, every write
# lands in page-cache pages never used before, and on a VM whose host backs guest memory on first
# touch (and takes free memory back within seconds, see the notes) each such page costs a host
# fault: ~25% more broker CPU per send. So each broker first takes WARM sends (~1.1 GiB of
# records), and every measured run sees it as it runs after its first minutes.
# WARM=0 skips it (a fresh broker's figures).
WARM=${WARM:-1000000}
warm_up() {
  [ "$WARM" -gt 0 ] || return 0
  h2_send "$1" "warm-$1.txt" 10 20 "$WARM"
  grep -q "$WARM succeeded" "$work/warm-$1.txt" || { echo "bench.sh: the warm-up of the broker on port $1 failed:" >&2; tail -5 "$work/warm-$1.txt" >&2; exit 1; }
}
sleep 0.5
# The target pair runs ROUNDS times, alternating (medians of each side, as in bench-rpc.sh).
ROUNDS=${ROUNDS:-3}
[ "$ROUNDS" -ge 1 ] || { echo "ROUNDS must be at least 1" >&2; exit 2; }
send_headers=(-H 'content-type: application/grpc' -H 'te: trailers' -H 'x-mq-client-id: h2load')
# Sent to nghttpd at the same path as well: nghttp2 never indexes `:path` in HPACK, so each
# request carries it Huffman-coded and the server decodes it every time; a 6-byte path instead
# of the broker's 48 bytes made nghttpd ~10% faster than the same work (2026-11-28: 176k
# against 157k req/s, medians of 3).
send_path=/apache.rocketmq.v2.MessagingService/SendMessage
h2_send() { # port output connections streams-per-connection [count]: the fixed SendMessage at a broker
  h2load -n "${5:-$COUNT}" -c "$3" -m "$4" "${send_headers[@]}" \
    -d "$work/send.bin" "http://127.0.0.1:$1$send_path" > "$work/$2" 2>&1
}
# The HTTP/2 ceiling for the same work: the identical h2load command (the same headers and
# SendMessage body) at nghttpd, which reads the body and answers with a file of exactly the
# broker's reply size. A 1 KiB GET (no request body) is measured too.
h2_nghttpd_post() { h2load -n "$COUNT" -c 10 -m 5 "${send_headers[@]}" -d "$work/send.bin" "http://127.0.0.1:$ng_port$send_path" > "$work/h2-ngpost-$1.txt" 2>&1; }
h2_nghttpd() { h2load -n "$COUNT" -c 10 -m 5 "http://127.0.0.1:$ng_port/1k" > "$work/h2-nghttpd-$1.txt" 2>&1; }
warm_up "$one_port"; warm_up "$async_port"; sync; sleep 1  # and its writeback done before the rounds
h2_send "$one_port" h2-size.txt 1 1 1000
reply=$(reply_bytes "$work/h2-size.txt")
# Checked against one SendMessage sent apart, through grpcio, whose answer must be OK: a broker
# answering the sizing run with errors would otherwise set the size every later run is checked
# against (its errors travel inside a normal SendMessageResponse, not as a trailers-only reply).
expected=$("$py" - "$work/send.bin" "$one_port" <<'PY'
import sys, grpc
from rocketmq.grpc_protocol import service_pb2 as s, service_pb2_grpc as g, definition_pb2 as d
request = s.SendMessageRequest.FromString(open(sys.argv[1], "rb").read()[5:])
with grpc.insecure_channel(f"127.0.0.1:{sys.argv[2]}") as channel:
    response = g.MessagingServiceStub(channel).SendMessage(request, metadata=[("x-mq-client-id", "h2load")], timeout=10)
if response.status.code != d.Code.OK:
    sys.exit(f"bench.sh: the broker refused the benchmark's SendMessage: {response.status}")
print(5 + len(response.SerializeToString()))
PY
)
python3 -c "import sys; sys.exit(abs($reply - $expected) > 1)" || { echo "bench.sh: the broker's h2load replies carry $reply DATA bytes, an OK SendMessage answer $expected" >&2; exit 1; }
mkdir -p "$work/htdocs$(dirname "$send_path")"; head -c "$reply" /dev/zero > "$work/htdocs$send_path"
for r in $(seq 1 "$ROUNDS"); do  # ABBA: neither side always goes first
  if [ $((r % 2)) = 1 ]; then h2_nghttpd "$r"; h2_nghttpd_post "$r"; h2_send "$one_port" "h2-broker-$r.txt" 10 5
  else h2_send "$one_port" "h2-broker-$r.txt" 10 5; h2_nghttpd_post "$r"; h2_nghttpd "$r"; fi
done
h2_send "$async_port" h2-broker-default.txt 10 5
kill "$one_pid" 2>/dev/null || true  # then its log goes, so that its page cache is reused by the steps after it
for _ in $(seq 1 100); do kill -0 "$one_pid" 2>/dev/null || break; sleep 0.1; done
if ! kill -0 "$one_pid" 2>/dev/null; then
  rm -rf "$work/one"
  keep=(); for p in "${pids[@]}"; do [ "$p" = "$one_pid" ] || keep+=("$p"); done; pids=("${keep[@]}")  # its pid may be reused
fi

# 3 and 4. Produce: Redis streams (the same payload and concurrency) against mqbench on an async-
#    and a sync-flush broker, in ROUNDS alternating rounds (each reference right before the run it
#    is compared with: on two shared cores the minute matters), medians of each side. mqbench uses
#    one client thread, as redis-benchmark has, and 4 connections, so that the broker's event
#    loops share the load as they do redis-benchmark's 50.
value=$(head -c $SIZE /dev/zero | tr '\0' 'a')
read -r sync_pid sync_port < <(start_broker sync sync --metrics-port 0)
pids+=("$sync_pid")
wait_line "$work/sync.log" "metrics listening on"
sync_metrics=$(grep -o 'http://[^ ]*/metrics' "$work/sync.log" | head -1)
# The sync broker's group-commit totals (its /metrics) before and after each measured sync run:
# how many sends each fdatasync covered, and how much of the time the flusher waited for one.
gc_scrape() { python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' "$sync_metrics" > "$work/$1"; }
warm_up "$sync_port"
# A fresh redis-server for every run: a stream and an AOF grown by earlier rounds would make
# Redis fork for an AOF rewrite in the middle of a later one.
redis_run() { # fsync round
  local port dir="$work/redis-$1-$2" pid
  port=$(free_port); mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --appendonly yes --appendfsync "$1" \
    --save '' --daemonize no >"$dir.log" 2>&1 &
  pid=$!; pids+=("$pid")
  for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-benchmark -p "$port" -c "$CONC" -n "$COUNT" -q XADD bench '*' f "$value" > "$work/redis-$1-$2.txt" 2>&1
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -rf "$dir"
}
produce() { # flush port pid round
  [ "$1" != sync ] || gc_scrape "gc-produce-$4-before.txt"
  "$bin/mqbench" produce --endpoint "127.0.0.1:$2" --topic "p-$1-$4" --count "$COUNT" --concurrency "$CONC" --connections 4 \
    --client-threads 1 --mode sync --broker-pid "$3" --json > "$work/produce-$1-$4.json" 2>/dev/null
  [ "$1" != sync ] || gc_scrape "gc-produce-$4-after.txt"
}
# The sync-flush broker driven by h2load as well: a C load generator at the same 50 streams,
# cheap per request like redis-benchmark, so the broker's group-commit capacity is seen without
# the Swift client's cost (mqbench shares the two cores with the broker).
SYNC_STREAMS=$(((CONC + 4) / 5))  # streams on each of 5 connections: CONC in all
h2_sync() { gc_scrape "gc-h2load-$1-before.txt"; h2_send "$sync_port" "h2-sync-$1.txt" 5 "$SYNC_STREAMS"; gc_scrape "gc-h2load-$1-after.txt"; }
# Before each run the page cache's dirty data is written back, so that no run pays for the
# writeback of the one before it.
settle() { sync; sleep 1; }
for r in $(seq 1 "$ROUNDS"); do  # ABBA within each pair, as above
  if [ $((r % 2)) = 1 ]; then
    settle; redis_run everysec "$r"; settle; produce async "$async_port" "$async_pid" "$r"
    settle; redis_run always "$r"; settle; produce sync "$sync_port" "$sync_pid" "$r"; settle; h2_sync "$r"
  else
    settle; produce async "$async_port" "$async_pid" "$r"; settle; redis_run everysec "$r"
    settle; h2_sync "$r"; settle; produce sync "$sync_port" "$sync_pid" "$r"; settle; redis_run always "$r"
  fi
done
"$bin/mqbench" consume --endpoint "127.0.0.1:$async_port" --topic p-async-1 --count "$COUNT" --concurrency 8 --json > "$work/consume.json" 2>/dev/null
# e2e: first as fast as it goes (the same senders as the produce runs, 8 receivers): the rate at
# which messages get produced *and* consumed is the maximum rate of this scenario; then paced to
# half of it for ~6 s, the sends due within each millisecond released together (one wake-up and
# one write per message instead cost the client ~25% and the broker ~15% more CPU). (Half the
# produce-only rate would be the machine's whole capacity: each consumed message costs about
# what producing it does.) The first second is a warm-up, as in the OpenMessaging Benchmark: the
# target is judged on the latency of the messages born after it; the whole run's is reported too.
settle
"$bin/mqbench" e2e --endpoint "127.0.0.1:$async_port" --topic e2e-max --count "$COUNT" --concurrency 8 --senders "$CONC" --json > "$work/e2e-max.json" 2>/dev/null
max_rate=$(python3 -c "import json; print(int(json.load(open('$work/e2e-max.json'))['rate']))")
half=$((max_rate / 2))
settle
"$bin/mqbench" e2e --endpoint "127.0.0.1:$async_port" --topic e2e --count $((half * 6)) --concurrency 8 --senders "$CONC" --rate "$half" --tick-ms 1 --warmup 1 --broker-pid "$async_pid" --json > "$work/e2e.json" 2>/dev/null

# 5. Idle RSS with 1,000 topics x 8 queues.
python3 - "$work/topics.json" <<'PY'
import json, sys
json.dump({"topics": [{"name": f"idle-{i}", "queueCount": 8, "permission": 6, "messageTypes": ["NORMAL"]} for i in range(1000)]}, open(sys.argv[1], "w"))
PY
read -r idle_pid idle_port < <(start_broker idle async --config "$work/topics.json")
pids+=("$idle_pid")
sleep 3
idle_rss=$(awk '/VmRSS/{printf "%.0f", $2/1024}' "/proc/$idle_pid/status")

CPU_START=$cpu_start CPU_END=$(head -1 /proc/stat) REPLY=$reply WORK=$work IDLE_RSS=$idle_rss WARM=$WARM COUNT=$COUNT CONC=$CONC ROUNDS=$ROUNDS SYNC_STREAMS=$SYNC_STREAMS python3 - "$root/BENCHMARKS.md" <<'PY'
import json, os, re, subprocess, sys, datetime
md, w = sys.argv[1], os.environ["WORK"]
sys.path.insert(0, os.path.join(os.path.dirname(md), "Scripts", "lib"))
from benchmarks_md import check_replies, h2load_result, last_json_line, replace_section
def h2(name): return h2load_result(f"{w}/{name}")
# Every h2load run at a broker got real SendMessage answers, not errors (h2load counts those as
# successes). The queue offset in each answer is a varint whose size can grow by a byte within a
# run, so the mean may differ by up to 1 byte; an error answer differs by tens of bytes, so errors
# in more than a few percent of the calls stop the script.
for name in os.listdir(w):
    if name.startswith(("h2-broker", "h2-sync")): check_replies(f"{w}/{name}", int(os.environ["REPLY"]), tolerance=1)
def js(name): return last_json_line(f"{w}/{name}")
def redis(name):
    m = re.search(r"([\d.]+) requests per second", open(f"{w}/{name}").read())
    if not m: sys.exit(f"cannot read {name}:\n" + open(f"{w}/{name}").read())
    return float(m.group(1))
sh = lambda c: subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
seq = json.load(open(f"{w}/fio-seq.json"))["jobs"][0]["write"]["bw_bytes"] / 1e6
fsync = json.load(open(f"{w}/fio-sync.json"))["jobs"][0]["write"]["iops"]
rounds = int(os.environ["ROUNDS"])
ngs = [h2(f"h2-nghttpd-{r}.txt")[0] for r in range(1, rounds + 1)]
ngps = [h2(f"h2-ngpost-{r}.txt")[0] for r in range(1, rounds + 1)]
reply = int(os.environ["REPLY"])
brs = [h2(f"h2-broker-{r}.txt") for r in range(1, rounds + 1)]
def median(xs):  # the upper one of an even count
    xs = sorted(xs)
    return xs[len(xs) // 2]
ng, ngp, br = median(ngs), median(ngps), median(b[0] for b in brs)
br_ok = min(b[1] for b in brs)
brd, _ = h2("h2-broker-default.txt")
evs = [redis(f"redis-everysec-{r}.txt") for r in range(1, rounds + 1)]
als = [redis(f"redis-always-{r}.txt") for r in range(1, rounds + 1)]
pas = [js(f"produce-async-{r}.json") for r in range(1, rounds + 1)]
pss = [js(f"produce-sync-{r}.json") for r in range(1, rounds + 1)]
hss = [h2(f"h2-sync-{r}.txt") for r in range(1, rounds + 1)]
hs, hs_ok = median(h[0] for h in hss), min(h[1] for h in hss)
# h2load runs after the produce in odd rounds and before it in even ones.
warm = int(os.environ["WARM"])  # each warm-up was checked when it ran
warm_text = (f"each broker first takes {warm:,} `SendMessage`s from h2load, past its page-cache window (steady state, see the notes)"
             if warm else "fresh brokers, no warm-up")
sync_stored = warm + (rounds + (rounds if rounds % 2 == 0 else rounds - 1)) * int(os.environ["COUNT"])
async_stored = warm + (rounds + 1) * int(os.environ["COUNT"])
ev, al = median(evs), median(als)
# The run with the median rate (the upper one of an even count), whose latencies are shown.
median_run = lambda runs: sorted(runs, key=lambda j: j["rate"])[len(runs) // 2]
pa, ps = median_run(pas), median_run(pss)
per_round = lambda ours, refs: ", ".join(f"{o / r:.2f}×" for o, r in zip(ours, refs))  # rates
rates = lambda runs: [j["rate"] for j in runs]
co, e2e = js("consume.json"), js("e2e.json")
# How loaded the machine was during the e2e run (mqbench reads /proc/stat around it) and what
# mqbench itself took: on two shared cores, "half the maximum rate" can still fill them.
e2e_load = (f"; the machine {e2e['host_busy_percent']:.0f}% busy, steal {e2e['host_steal_percent']:.0f}%, "
            f"mqbench (senders and receivers, its start included) {e2e['client_cpu_seconds'] * 1e6 / max(1, e2e['count']):.0f} µs of CPU per message") if "host_busy_percent" in e2e else ""
e2e_max = js("e2e-max.json")
# Where the steady messages' time went: born → stored (the broker's store timestamp, to the ms),
# stored → delivered (the receive answer's delivery timestamp), delivered → received.
e2e_phases = ("; by phase, p50/p99: " + ", ".join(
    f"{label} {e2e[f'phase_{name}_p50_us']}/{e2e[f'phase_{name}_p99_us']} µs"
    for name, label in (("stored", "born→stored"), ("waited", "stored→delivered"), ("travelled", "delivered→received")))
              ) if "phase_count" in e2e else ""
count, conc, idle = os.environ["COUNT"], os.environ["CONC"], os.environ["IDLE_RSS"]
sync_streams = os.environ["SYNC_STREAMS"]
cores, cpu = sh("nproc"), sh("lscpu | sed -n 's/^Model name: *//p'")
# /proc/stat's cpu line: user nice system idle iowait irq softirq steal ...
ticks = lambda line: [int(v) for v in line.split()[1:9]]
cpu_delta = [b - a for a, b in zip(ticks(os.environ["CPU_START"]), ticks(os.environ["CPU_END"]))]
steal, idle_share = cpu_delta[7] / max(sum(cpu_delta), 1), (cpu_delta[3] + cpu_delta[4]) / max(sum(cpu_delta), 1)
swift, redisv, fiov = sh("swift --version 2>&1 | head -1"), sh("redis-server --version"), sh("fio --version")
yes = lambda ok: "yes" if ok else "no"
def group_commit(driver):
    """Per round of `driver` (produce or h2load) at the sync broker: (appends per fdatasync, idle share)."""
    def totals(name):
        values = {}
        for line in open(f"{w}/{name}"):
            if line.startswith("rocketmq_storage_"):
                key, value = line.rsplit(" ", 1)
                values[key] = float(value)
        return values
    out = []
    for r in range(1, rounds + 1):
        a, b = totals(f"gc-{driver}-{r}-before.txt"), totals(f"gc-{driver}-{r}-after.txt")
        d = {k: b[k] - a.get(k, 0) for k in b}
        flushes = max(d["rocketmq_storage_flushes_total"], 1)
        busy = d["rocketmq_storage_flush_seconds_total"] + d["rocketmq_storage_flusher_idle_seconds_total"]
        out.append((d["rocketmq_storage_group_commit_appends_total"] / flushes, d["rocketmq_storage_flusher_idle_seconds_total"] / max(busy, 1e-9)))
    return ", ".join(f"{g:.1f} ({i * 100:.0f}% idle)" for g, i in out)
L = ["## Cluster", "",
     f"Measured {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC by `Scripts/bench.sh` (all figures from one run on one machine, release build, loopback, 1 KiB messages; {warm_text}; the produce and `SendMessage` comparisons are medians of {rounds} alternating rounds in ABBA order, each run after the page cache's writeback settled, each Redis run on a fresh server).", "",
     f"- Machine: {cores} cores ({cpu}), shared with other work: read the ratios. Over the run the hypervisor took {steal * 100:.0f}% of the VM's CPU time (steal; quiet runs here show 1–4%), {idle_share * 100:.0f}% was idle",
     f"- Versions: {swift}; {redisv}; {fiov}",
     f"- Commands: `mqbench produce --count {count} --concurrency {conc} --connections 4 --client-threads 1 --mode sync` (each sender awaits each send; one client thread like redis-benchmark) against an async- and a sync-flush `mqbroker`; `redis-benchmark -c {conc} -n {count} XADD bench '*' f <1 KiB>` with `appendonly yes` and `appendfsync everysec|always`; `h2load -n {count} -c 10 -m 5` with a fixed gRPC-framed `SendMessage` (1 KiB body) at `mqbroker --event-loops 1` (and at the default broker), the same command (the same path too) at `nghttpd` (one worker thread) answering with a file of the broker's reply size, and a 1 KiB GET at `nghttpd`; the same `SendMessage` with `h2load -n {count} -c 5 -m {sync_streams}` at the sync-flush broker; fio 1 KiB sequential writes (buffered and with fdatasync each)", "",
     "| Scenario | rocketmq-swift | Reference | Ratio | Target | Met |", "|---|---|---|---|---|---|",
     f"| Produce, async flush (median of {rounds} alternating rounds; per round {per_round(rates(pas), evs)}) | {pa['rate']:,.0f} msgs/s, p50 {pa['p50_us']} µs, p99 {pa['p99_us']} µs | Redis XADD everysec {ev:,.0f} req/s | {pa['rate']/ev:.2f}× | ≥ 1.0× | {yes(pa['rate'] >= ev)} |",
     f"| Produce, sync flush (group commit; median of {rounds}; per round {per_round(rates(pss), als)}) | {ps['rate']:,.0f} msgs/s, p50 {ps['p50_us']} µs, p99 {ps['p99_us']} µs | Redis XADD always {al:,.0f} req/s | {ps['rate']/al:.2f}× | ≥ 1.5× | {yes(ps['rate'] >= 1.5 * al)} |",
     f"| the same sync-flush broker driven by h2load instead of mqbench (`SendMessage`, 5 connections × {sync_streams} streams; median of {rounds}, each {hs_ok:,}+ ok; per round {per_round([h[0] for h in hss], als)}): the broker's capacity with a C client, as Redis is measured | {hs:,.0f} msgs/s | Redis XADD always {al:,.0f} req/s | {hs/al:.2f}× | — | |",
     f"| h2load → mqbroker SendMessage (median of {rounds} alternating runs, each {br_ok:,}+ ok; per run {', '.join(f'{b[0] / n * 100:.0f}%' for b, n in zip(brs, ngps))}), one event loop | {br:,.0f} req/s | the same h2load → nghttpd (the same request POSTed to the same path, a {reply}-byte reply like the broker's), one thread (its default): {ngp:,.0f} req/s | {br/ngp*100:.0f}% | ≥ 50% | {yes(br >= 0.5 * ngp)} |",
     f"| the same against nghttpd answering a 1 KiB GET (no request body; per run {', '.join(f'{b[0] / n * 100:.0f}%' for b, n in zip(brs, ngs))}) | {br:,.0f} req/s | h2load → nghttpd 1 KiB GET, one thread: {ng:,.0f} req/s | {br/ng*100:.0f}% | — | |",
     f"| the same, the broker's default (one loop per core) | {brd:,.0f} req/s | {ngp:,.0f} req/s | {brd/ngp*100:.0f}% | — | |",
     f"| End to end at half its max rate ({e2e['count']:,} msgs sent at {e2e['send_rate']:,.0f} msgs/s on a new topic, released in 1 ms ticks, consumed at once; unpaced, produced and consumed at {e2e_max['rate']:,.0f} msgs/s{e2e_load}). After a 1 s warm-up ({e2e['steady_count']:,} msgs; the whole run including it: p50 {e2e['p50_us']} µs, p99 {e2e['p99_us']} µs, max {e2e['max_us']} µs) | p50 {e2e['steady_p50_us']} µs, p99 {e2e['steady_p99_us']} µs, max {e2e['steady_max_us']} µs{e2e_phases} | | | p99 ≤ 5 ms | {yes(e2e['steady_p99_us'] <= 5000)} |",
     f"| Consume (8 receivers, batch 32, ack per batch) | {co['rate']:,.0f} msgs/s; lost {co['lost']}, duplicated {co['duplicated']} | | | | |",
     f"| Broker RSS idle, 1,000 topics × 8 queues | {idle} MiB | | | ≤ 150 MiB | {yes(int(idle) <= 150)} |",
     f"| Disk ceiling (fio) | | {seq:,.0f} MB/s buffered; {fsync:,.0f} fdatasync writes/s | | | |",
     "",
     f"Group commit at the sync broker, from its `/metrics` around each round (sends per `fdatasync`, and the share of its time the flusher waited for a first send): mqbench {group_commit('produce')}; h2load {group_commit('h2load')}.", "",
     f"Broker CPU time since its start and peak RSS, after the last produce round: async {pas[-1].get('broker_cpu_seconds', 0):.1f} s / {pas[-1].get('broker_peak_rss_mib', 0):.0f} MiB for {async_stored:,} messages (the warm-up, its `SendMessage` run and the produce rounds; ≈ {pas[-1].get('broker_cpu_seconds', 0) * 1e6 / async_stored:.1f} µs each), sync {pss[-1].get('broker_cpu_seconds', 0):.1f} s / {pss[-1].get('broker_peak_rss_mib', 0):.0f} MiB for {sync_stored:,} messages (the warm-up, the produce rounds and the h2load rounds before the last produce; ≈ {pss[-1].get('broker_cpu_seconds', 0) * 1e6 / sync_stored:.1f} µs each).",
     ""]
replace_section(md, "Cluster", "\n".join(L))
PY
