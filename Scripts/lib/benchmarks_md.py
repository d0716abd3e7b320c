"""Helpers shared by the Scripts/bench*.sh scripts: reading tool outputs, and replacing one
`## Title` section of BENCHMARKS.md.

Everything from `<!-- <slug>-notes -->` to the section's end is hand-written analysis and is
kept across reruns; the rest of the section is the script's. Other sections are untouched.
"""
import json
import os
import re
import sys


def h2load_result(path):
    """(requests/s, succeeded requests) from an h2load run's output; exits if it has neither."""
    text = open(path).read()
    ok = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", text)
    m = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", text)
    if not m or not ok:
        sys.exit(f"cannot read h2load output {path}:\n{text}")
    return float(m.group(1)), int(ok.group(1))


def h2load_reply_bytes(path):
    """DATA bytes per finished request in an h2load run (how Scripts/lib/bench_common.sh's
    reply_bytes measures a server's reply)."""
    text = open(path).read()
    data = re.search(r"\((\d+)\) data", text)
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done", text)
    if not data or not done or int(done.group(1)) == 0:
        sys.exit(f"cannot read h2load output {path}:\n{text}")
    return int(data.group(1)) / int(done.group(1))


def check_replies(path, expected, tolerance=0):
    """Exits unless every reply in the h2load run at `path` carried `expected` DATA bytes (within
    `tolerance`, for replies holding a growing varint such as an offset). h2load counts a gRPC
    error as a success (HTTP 200); an error reply has another size (a trailers-only one, none),
    so a server answering with cheap errors cannot pass for a fast one."""
    got = h2load_reply_bytes(path)
    if abs(got - expected) > tolerance:
        sys.exit(f"{path}: {got:.1f} DATA bytes per reply, expected {expected}: were some calls errors?")


def last_json_line(path):
    """The summary a tool printed as its last line of JSON (mqbench --json, rpc-interop bench)."""
    return json.loads(open(path).read().strip().splitlines()[-1])


def replace_section(md_path, title, section):
    slug = title.lower()
    marker = f"<!-- {slug}-notes -->"
    section = section.rstrip() + "\n"
    text = open(md_path).read() if os.path.exists(md_path) else "# Benchmarks\n"
    start = text.find(f"## {title}\n")
    if start < 0:
        text = text.rstrip() + "\n\n" + section
    else:
        nxt = text.find("\n## ", start + 1)
        old = text[start:nxt + 1] if nxt >= 0 else text[start:]
        if marker in old:
            section += "\n" + old[old.index(marker):].rstrip() + "\n"
        text = text[:start] + section + ("\n" + text[nxt + 1:] if nxt >= 0 else "")
    with open(md_path, "w") as f:
        f.write(text)
    print(section)
