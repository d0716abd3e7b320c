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
reply_bytes() {
  python3 - "$1" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
data = int(re.search(r"\((\d+)\) data", t).group(1))
done = int(re.search(r"requests: \d+ total, \d+ started, (\d+) done", t).group(1))
print(round(data / done))
PY
}
