#!/usr/bin/env bash
# What replication costs a master, measured in one run on one machine and written to the
# "Replication" section of BENCHMARKS.md as ratios against the same master without a slave:
# mqbench sync produce (100,000 x 1 KiB, 50 senders) at an async- and a sync-flush master, alone,
# with an ASYNC_MASTER's slave, and as SYNC_MASTER with its slave; the slave runs on the same
# machine (async flush), so master, slave and client share its cores. Also how long the slave
# took to catch up after each run. Release build, loopback only.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
swift build -c release --product mqbroker >/dev/null
swift build -c release --product mqbench >/dev/null
swift build --product mqadmin >/dev/null
bin=$(swift build -c release --show-bin-path)
admin=$(swift build --show-bin-path)/mqadmin
work=$(mktemp -d -p "$root/.build" bench-ha.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.5; rm -rf "$work"; }
trap cleanup EXIT
source "$root/Scripts/lib/bench_common.sh"

COUNT=${COUNT:-100000}
ROUNDS=${ROUNDS:-3}

run() { # name flush role slave(yes|no)
  local name=$1 flush=$2 role=$3 slave=$4
  local mport sport; mport=$(free_port); sport=$(free_port)
  rm -rf "$work/m" "$work/s"
  "$bin/mqbroker" --data "$work/m" --port "$mport" --flush "$flush" --role "$role" --auto-create --admin-token bench --no-console >"$work/m.log" 2>&1 &
  local mpid=$!; pids+=("$mpid")
  wait_line "$work/m.log" "mqbroker listening on"
  local spid=""
  if [ "$slave" = yes ]; then
    "$bin/mqbroker" --data "$work/s" --port "$sport" --flush async --role SLAVE --master "127.0.0.1:$mport" --admin-token bench --no-console >"$work/s.log" 2>&1 &
    spid=$!; pids+=("$spid")
    wait_line "$work/s.log" "following the master"
  fi
  "$bin/mqbench" produce --endpoint "127.0.0.1:$mport" --count "$COUNT" --concurrency 50 --mode sync --json >"$work/$name.json" 2>/dev/null
  local caught=""
  if [ "$slave" = yes ]; then
    local start; start=$(date +%s.%N)
    for _ in $(seq 1 600); do
      lag=$("$admin" haStatus -b "127.0.0.1:$mport" 2>/dev/null | tail -1 | awk '{print $NF}')
      [ "$lag" = "0" ] && break
      sleep 0.05
    done
    [ "$lag" = "0" ] || { echo "the slave did not catch up" >&2; exit 1; }
    caught=$(python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 2))" "$start" "$(date +%s.%N)")
  fi
  echo "$caught" >"$work/$name.caught"
  kill "$mpid" ${spid:+"$spid"} 2>/dev/null || true
  wait "$mpid" ${spid:+"$spid"} 2>/dev/null || true
}

for round in $(seq 1 "$ROUNDS"); do
  for flush in async sync; do
    run "$flush-alone-$round" "$flush" ASYNC_MASTER no
    run "$flush-async-$round" "$flush" ASYNC_MASTER yes
    run "$flush-sync-$round" "$flush" SYNC_MASTER yes
  done
done

WORK=$work ROUNDS=$ROUNDS COUNT=$COUNT python3 - "$root/BENCHMARKS.md" <<'PY'
import datetime, os, statistics, sys
sys.path.insert(0, os.path.join(os.path.dirname(sys.argv[1]), "Scripts", "lib"))
from benchmarks_md import last_json_line, replace_section
work, rounds, count = os.environ["WORK"], int(os.environ["ROUNDS"]), int(os.environ["COUNT"])
def results(name):
    runs = [last_json_line(f"{work}/{name}-{r}.json") for r in range(1, rounds + 1)]
    caught = [open(f"{work}/{name}-{r}.caught").read().strip() for r in range(1, rounds + 1)]
    return runs, caught
rows = []
for flush in ("async", "sync"):
    alone, _ = results(f"{flush}-alone")
    base = statistics.median(r["rate"] for r in alone)
    rows.append(f"| {flush} flush, no slave (the reference) | {base:,.0f} msgs/s, p99 {statistics.median(r['p99_us'] for r in alone):,.0f} µs | 1.00× | |")
    for kind, label in (("async", "ASYNC_MASTER + slave"), ("sync", "SYNC_MASTER + slave (each send waits for the slave)")):
        runs, caught = results(f"{flush}-{kind}")
        rate = statistics.median(r["rate"] for r in runs)
        errors = sum(sum(r["errors"].values()) for r in runs)
        rows.append(f"| {flush} flush, {label} | {rate:,.0f} msgs/s, p99 {statistics.median(r['p99_us'] for r in runs):,.0f} µs"
                    f"{'' if errors == 0 else f', {errors} errors'} | {rate / base:.2f}× | {', '.join(c + ' s' for c in caught)} |")
L = ["## Replication", "",
     f"Measured {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC by `Scripts/bench-replication.sh`: `mqbench produce --count {count} --concurrency 50 --mode sync` (1 KiB) at a master, medians of {rounds} rounds; master, slave (async flush) and client share this machine's cores, so a slave costs the master what its own CPU takes from them as well as the streaming.", "",
     "| Master | Produce | Against no slave | Slave caught up after the run (per round) |", "|---|---|---|---|", *rows, ""]
replace_section(sys.argv[1], "Replication", "\n".join(L))
PY
echo "wrote the Replication section of BENCHMARKS.md"
