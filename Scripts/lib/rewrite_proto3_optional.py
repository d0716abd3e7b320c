#!/usr/bin/env python3
"""Copies a proto tree, rewriting proto3 `optional` fields as the synthetic oneofs they are.

Debian's protoc-c 1.4.1 refuses proto3 `optional` ("hasn't been updated to support optional
fields in proto3"). On the wire and in the descriptor a proto3 `optional T name = N;` *is*
`oneof _name { T name = N; }`, so protoc-c gets that spelling and the C struct gains
`_name_case` plus the field. The originals in Protos/ stay the source of truth; the Swift
generator reads them (the `proto3_optional` flag) and never sees this copy.

usage: rewrite_proto3_optional.py SRC_DIR DST_DIR
"""
import os
import re
import sys

OPTIONAL = re.compile(r'^(\s*)optional\s+([\w.]+)\s+(\w+)\s*=\s*(\d+)\s*(\[[^\]]*\])?\s*;(.*)$')
PROTO3 = re.compile(r'^\s*syntax\s*=\s*"proto3"\s*;', re.M)


def rewrite(text):
    if not PROTO3.search(text):
        return text
    out = []
    for line in text.splitlines():
        m = OPTIONAL.match(line)
        if m:
            indent, typ, name, num, opts, rest = m.groups()
            opts = ' ' + opts if opts else ''
            line = f'{indent}oneof _{name} {{ {typ} {name} = {num}{opts}; }}{rest}'
        out.append(line)
    return '\n'.join(out) + '\n'


def main(src, dst):
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith('.proto'):
                continue
            path = os.path.join(dirpath, f)
            target = os.path.join(dst, os.path.relpath(path, src))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(path) as i, open(target, 'w') as o:
                o.write(rewrite(i.read()))


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
