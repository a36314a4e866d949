#!/usr/bin/env python3
"""A process whose memory the tests check page by page (tests/engine/
run_incremental.py, tests/migrate/test_live.py): PAGES pages of a private
mapping, each holding a pattern of its number and of how often it was
written; it rewrites pages in a fixed pseudo-random order (with a short
pause between writes, none with "busy"), makes, unmaps and mremaps small
mappings as it goes, and appends to LOG "I SUM" every 200 writes (SUM: a
running checksum of which pages it wrote, which a test recomputes) and, on
SIGUSR1, "VERIFY ok" or what differs after checking every page.

  dirty_pages.py PAGES LOG [busy]
"""
import hashlib, mmap, os, signal, sys, time
PAGES, LOG = int(sys.argv[1]), sys.argv[2]
BUSY = len(sys.argv) > 3 and sys.argv[3] == "busy"  # no pause between writes
EVERY = 200
flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
def page(p, c):
    return hashlib.blake2b(b"%d:%d" % (p, c), digest_size=64).digest() * 64
buf = mmap.mmap(-1, PAGES * 4096, flags=flags)
counters = [0] * PAGES
for p in range(PAGES):
    buf[p * 4096:(p + 1) * 4096] = page(p, 0)
extras = []  # [key, mapping, pages]
log = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
def verify():
    bad = [p for p in range(PAGES) if buf[p * 4096:(p + 1) * 4096] != page(p, counters[p])]
    for key, m, n in extras:
        bad += ["extra%d.%d" % (key, q) for q in range(n) if m[q * 4096:(q + 1) * 4096] != page(key, q)]
    os.write(log, b"VERIFY %s\n" % (b"ok" if not bad else ("bad %d: %s" % (len(bad), bad[:5])).encode()))
# The checks run between two writes (a signal handler could run between a
# counter's update and its page's).
verify_asked = []
signal.signal(signal.SIGUSR1, lambda *_: verify_asked.append(1))
fork_asked = []
signal.signal(signal.SIGUSR2, lambda *_: fork_asked.append(1))
os.write(log, b"ready\n")
x, i, s = 1, 0, 0
while True:
    if verify_asked:
        verify_asked.clear()
        verify()
    x = (x * 6364136223846793005 + 1442695040888963407) % 2**64
    p = (x >> 33) % PAGES
    counters[p] += 1
    buf[p * 4096:(p + 1) * 4096] = page(p, counters[p])
    i += 1
    s = (s * 31 + p + 1) % 2**61
    if i % 1000 == 0:  # a new small mapping; the oldest of five goes
        key = 1000000 + i
        m = mmap.mmap(-1, 16 * 4096, flags=flags)
        for q in range(16):
            m[q * 4096:(q + 1) * 4096] = page(key, q)
        extras.append([key, m, 16])
        if len(extras) > 5:
            extras.pop(0)[1].close()
    if i % 3000 == 0:  # mremap: the newest grows (and may move)
        e = extras[-1]
        e[1].resize(32 * 4096)
        for q in range(16, 32):
            e[1][q * 4096:(q + 1) * 4096] = page(e[0], q)
        e[2] = 32
    if i % EVERY == 0:
        os.write(log, b"%d %d\n" % (i, s))
        if fork_asked:  # SIGUSR2: a child goes on from here with a log of its own
            fork_asked.clear()
            if os.fork() == 0:
                log = os.open(LOG + ".child", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                os.write(log, b"child %d\n" % os.getpid())
    if not BUSY:
        time.sleep(0.0005)
