"""Replaces one `## Title` section of BENCHMARKS.md, shared by the Scripts/bench*.sh scripts.

Everything from `<!-- <slug>-notes -->` to the section's end is hand-written analysis and is
kept across reruns; the rest of the section is the script's. Other sections are untouched.
"""
import os


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
