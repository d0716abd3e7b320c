#!/usr/bin/env bash
# Store benchmarks: fio and `mqbench store` on the same disk, one run, results written to
# the "Store" section of BENCHMARKS.md.
#
#   Scripts/bench-store.sh                 # 1 GiB async run, 5 s per sync run, 1M index keys
#   BENCH_DIR=/data/bench BENCH_BYTES=268435456 Scripts/bench-store.sh
#
# Installs fio with apt-get if it is missing; builds mqbench in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DIR=${BENCH_DIR:-$ROOT/.build/bench-store}
BYTES=${BENCH_BYTES:-1073741824}
SYNC_SECONDS=${BENCH_SYNC_SECONDS:-5}
INDEX_KEYS=${BENCH_INDEX_KEYS:-1000000}
FIO_SYNC_SECONDS=${BENCH_FIO_SYNC_SECONDS:-10}

if ! command -v fio >/dev/null; then
    apt-get update -qq && apt-get install -y -qq fio
fi
swift build -c release --product mqbench
MQBENCH=$(swift build -c release --show-bin-path)/mqbench

rm -rf "$DIR" && mkdir -p "$DIR"
OUT="$DIR/results"
mkdir -p "$OUT"

FIO_SEQ="fio --name=seqwrite --directory=$DIR --rw=write --bs=1k --size=$BYTES --ioengine=psync --output-format=json"
FIO_SYNC="fio --name=fdatasync --directory=$DIR --rw=write --bs=1k --size=256m --fdatasync=1 --runtime=$FIO_SYNC_SECONDS --time_based --ioengine=psync --output-format=json"
MQ="$MQBENCH store --dir $DIR/mq --bytes $BYTES --sync-seconds $SYNC_SECONDS --index-keys $INDEX_KEYS"

# Each fio reference runs right before the mqbench scenarios it is compared with, after
# writeback settled, so both see the same disk (it is shared and its speed drifts).
settle() { sync; sleep 2; }
: > "$OUT/mqbench.jsonl"
settle
# On a VM whose host backs guest memory on first touch, writing into never-used page-cache pages
# costs a host fault per page; whichever step writes first would pay it (one run measured async
# appends at 44% of fio, the next at 140%). 2 GiB written and deleted first leaves that memory
# backed for fio and mqbench alike (as Scripts/bench.sh does).
dd if=/dev/zero of="$DIR/warm" bs=1M count=2048 status=none || echo "bench-store.sh: page-cache warm-up failed; figures may include first-touch costs" >&2
rm -f "$DIR/warm"

echo "== fio: buffered sequential 1 KiB writes ($BYTES bytes)"
$FIO_SEQ > "$OUT/fio-seq.json"
rm -f "$DIR"/seqwrite.*
settle
echo "== mqbench store: async appends, queue reads, recovery"
$MQ --only async,read,recovery | tee -a "$OUT/mqbench.jsonl"
settle
echo "== fio: 1 KiB writes, fdatasync after each (${FIO_SYNC_SECONDS} s)"
$FIO_SYNC > "$OUT/fio-sync.json"
rm -f "$DIR"/fdatasync.*
echo "== mqbench store: sync flush (group commit)"
$MQ --only sync | tee -a "$OUT/mqbench.jsonl"
settle
echo "== mqbench store: IndexFile lookups"
$MQ --only index | tee -a "$OUT/mqbench.jsonl"

FIO_SEQ="$FIO_SEQ" FIO_SYNC="$FIO_SYNC" MQ="$MQ" python3 - "$OUT" "$ROOT/BENCHMARKS.md" "$DIR" <<'PY'
import json, os, platform, subprocess, sys, datetime
out, md_path, data_dir = sys.argv[1], sys.argv[2], sys.argv[3]
def sh(c):
    try: return subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception: return "?"
seq = json.load(open(f"{out}/fio-seq.json"))["jobs"][0]["write"]
syn = json.load(open(f"{out}/fio-sync.json"))["jobs"][0]
fio_seq_mbs = seq["bw_bytes"] / 1e6
fio_sync_iops = syn["write"]["iops"]
fio_sync_p99 = syn.get("sync", {}).get("lat_ns", {}).get("percentile", {}).get("99.000000", 0) / 1000
fio_write_p99 = syn["write"].get("clat_ns", {}).get("percentile", {}).get("99.000000", 0) / 1000
rows = [json.loads(l) for l in open(f"{out}/mqbench.jsonl") if l.startswith("{")]
by = lambda s: [r for r in rows if r["scenario"] == s]
cpu = sh("lscpu | sed -n 's/^Model name: *//p'")
mem = sh("free -g | awk '/Mem:/{print $2}'")
disk = sh(f"df -T {data_dir} | awk 'NR==2{{print $1 \" (\" $2 \")\"}}'")
L = []
L.append("## Store")
L.append("")
L.append(f"Measured {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M')} UTC by `Scripts/bench-store.sh` (fio and `mqbench store` in one run, same directory; each fio reference runs just before the scenarios compared with it).")
L.append("")
L.append(f"- Machine: {sh('nproc')} cores ({cpu}), {mem} GiB RAM, kernel {platform.release()}; shared with other builds")
L.append(f"- Disk: `{data_dir}` on {disk}")
L.append(f"- Versions: {sh('swift --version 2>&1 | head -1')}; {sh('fio --version')}; mqbench release build")
L.append(f"- Commands: `{os.environ['FIO_SEQ']}`; `{os.environ['FIO_SYNC']}`; `{os.environ['MQ']} --only X` for X = `async,read,recovery`, `sync`, `index`")
L.append("")
L.append("| Scenario | rocketmq-swift | fio reference | Ratio | Target | Met |")
L.append("|---|---|---|---|---|---|")
for a in by("async-append"):
    r = a["mb_per_s"] / fio_seq_mbs
    L.append(f"| Async flush, 1 KiB bodies, 1 appender ({a['messages']:,} msgs, {a['record_bytes']/2**30:.2f} GiB of records) | {a['mb_per_s']:.0f} MB/s ({a['msgs_per_s']:,.0f} msgs/s) | {fio_seq_mbs:.0f} MB/s buffered sequential write, bs=1k | {r*100:.0f}% | ≥ 70% | {'yes' if r >= 0.7 else 'no'} |")
for s in by("sync-append"):
    ratio = s["msgs_per_s"] / fio_sync_iops
    big = s["writers"] == 64
    L.append(f"| Sync flush (group commit), {s['writers']} concurrent appender(s) | {s['msgs_per_s']:,.0f} msgs/s, p50 {s['p50_us']:.0f} µs, p99 {s['p99_us']:.0f} µs | {fio_sync_iops:,.0f} writes/s, fdatasync after each (p99 write+sync {fio_write_p99 + fio_sync_p99:.0f} µs) | {ratio:.1f}× | {'≥ 10×' if big else '—'} | {('yes' if ratio >= 10 else 'no') if big else ''} |")
for s in by("queue-read"):
    L.append(f"| ConsumeQueue read (entry + pread + CRC check + decode), batches of 32, 8 queues | {s['msgs_per_s']:,.0f} msgs/s, {s['mb_per_s']:.0f} MB/s | | | | |")
for s in by("queue-read-tag-filter"):
    L.append(f"| ConsumeQueue tag-filtered read (1 in 4 match) | {s['entries_per_s']:,.0f} entries/s scanned | | | | |")
for s in by("index-lookup"):
    L.append(f"| IndexFile lookup by key, {s['keys']:,} keys indexed (plus {s['keys']:,} unique ids), {s['lookups']:,} random lookups, {s['misses']} misses | median {s['key_median_us']:.1f} µs, p99 {s['key_p99_us']:.1f} µs (by unique id: median {s['uniq_median_us']:.1f} µs) | | | ≤ 50 µs median | {'yes' if s['key_median_us'] <= 50 else 'no'} |")
for s in by("recovery-full-scan"):
    L.append(f"| Crash recovery of a {s['log_bytes']/2**30:.2f} GiB log with no checkpoint: CRC check and redispatch of every record (page cache dropped first: {'yes' if s['page_cache_dropped'] else 'no'}) | {s['seconds']:.2f} s | | | ≤ 5 s | {'yes' if s['seconds'] <= 5 else 'no'} |")
for s in by("recovery-rebuild-queues"):
    L.append(f"| Same, with every ConsumeQueue deleted (rebuilt from the log) | {s['seconds']:.2f} s | | | | |")
L.append("")
L.append("RSS of the mqbench process after each scenario / peak so far (VmRSS / VmHWM): " + ", ".join(
    f"{r['scenario']}{'-' + str(r['writers']) if 'writers' in r else ''} {r['rss_mib']:.0f}/{r['peak_rss_mib']:.0f} MiB" for r in rows) + ".")
L.append("")
sys.path.insert(0, os.path.join(os.path.dirname(md_path), "Scripts", "lib"))
from benchmarks_md import replace_section
replace_section(md_path, "Store", "\n".join(L))
PY
