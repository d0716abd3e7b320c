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
