#!/usr/bin/env python3
"""The receiving side of a migration whose link is cut in post-copy
(tests/migrate/test_postcopy.py): runs `ckpt receive ARGS` with its
standard input fed from this one frame by frame (docs/migration.md,
"Protocol") and ends that input after the COUNT-th PAGES frame, as a link
that fails would.

  cut_after_pages.py COUNT CKPT receive ARGS...
"""
import os
import subprocess
import sys

PAGES = 12  # frame type

count = int(sys.argv[1])
p = subprocess.Popen(sys.argv[2:], stdin=subprocess.PIPE)


def read(n):
    out = b""
    while len(out) < n:
        b = os.read(0, n - len(out))
        if not b:
            return None
        out += b
    return out


seen = 0
while seen < count:
    h = read(16)
    if h is None:
        break
    body = read(int.from_bytes(h[4:8], "little"))
    if body is None:
        break
    p.stdin.write(h + body)
    p.stdin.flush()
    seen += h[2] == PAGES
p.stdin.close()
sys.exit(p.wait())
