# Shell helpers shared by the Scripts/bench*.sh scripts (source it).

# A free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_line FILE PATTERN: waits up to 30 s for PATTERN to appear in FILE, else prints it and exits.
wait_line() {
  for _ in $(seq 1 300); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "timeout waiting for $2 in $1" >&2; cat "$1" >&2; exit 1
}

# reply_bytes H2LOAD_OUTPUT: the DATA bytes per response in an h2load run (its "data" traffic over
# its requests): what nghttpd serves when it stands in for a server, so that both send as much.
bench_lib=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
reply_bytes() {
  python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); from benchmarks_md import h2load_reply_bytes; print(round(h2load_reply_bytes(sys.argv[2])))' "$bench_lib" "$1"
}
