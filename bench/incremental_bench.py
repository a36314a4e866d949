#!/usr/bin/env python3
"""Incremental dumps against full ones, in one run (docs/performance.md):
a process with MIB MiB populated writes pages at a chosen rate; per rate,
a full `--leave-running` dump, a `--pre` dump, and after INTERVAL seconds
a `--pre --parent` dump. Printed: frozen time, image bytes, total time and
their ratios to the full dump; the write cost per page while tracked and
while not (the worker's own timing of its stores).

  incremental_bench.py [--ckpt build/bin/ckpt] [--mib 1024] [--rates 0,10,50,200]
                       [--interval 2] [--reps 3] [--dir /var/tmp]
Needs root. Results go into docs/performance-results.md with this command line.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def dump(ckpt, pid, d, *opts):
    t = time.monotonic()
    r = subprocess.run([ckpt, "dump", str(pid), "-D", d, "--json", "--leave-running", "--external-pipes"] + list(opts),
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("ckpt dump failed: " + r.stderr)
    j = json.loads(r.stdout)
    j["wall_s"] = time.monotonic() - t
    return j


def write_cost(proc, seconds):
    """Microseconds per page write over the next `seconds` of reports."""
    pages = us = 0
    for _ in range(seconds):
        n, t = proc.stdout.readline().split()
        pages, us = pages + int(n), us + float(t)
    return us / pages if pages else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default=os.path.join(ROOT, "build", "bin", "ckpt"))
    ap.add_argument("--worker", default=os.path.join(ROOT, "build", "bin", "dirty_worker"))
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--rates", default="0,10,50,200")
    ap.add_argument("--interval", type=float, default=2.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--dir", default="/var/tmp")
    a = ap.parse_args()
    print("%d MiB, %.1f s between the --pre dump and the incremental one, median of %d" %
          (a.mib, a.interval, a.reps))
    print("%-8s | %-22s | %-22s | %-30s | %s" % ("MB/s", "full: frozen ms, MiB", "--pre: frozen ms",
                                                  "--parent: frozen ms, MiB, wall", "us/page write untracked, tracked"))
    for rate in [float(x) for x in a.rates.split(",")]:
        rows = []
        for _ in range(a.reps):
            w = tempfile.mkdtemp(prefix="ckpt-incr-bench.", dir=a.dir)
            p = subprocess.Popen([a.worker, str(a.mib), str(rate)], stdout=subprocess.PIPE, text=True,
                                 stdin=subprocess.DEVNULL, close_fds=True)
            try:
                assert p.stdout.readline().strip() == "ready"
                untracked = write_cost(p, 2) if rate > 0 else 0.0
                full = dump(a.ckpt, p.pid, os.path.join(w, "full"))
                shutil.rmtree(os.path.join(w, "full"))
                subprocess.run(["sync"])
                pre = dump(a.ckpt, p.pid, os.path.join(w, "g0"), "--pre")
                subprocess.run(["sync"])  # as before the full dump: no writeback of g0 during the next
                t0 = time.monotonic()
                tracked = write_cost(p, max(1, int(a.interval))) if rate > 0 else 0.0
                time.sleep(max(0.0, a.interval - (time.monotonic() - t0)))
                inc = dump(a.ckpt, p.pid, os.path.join(w, "g1"), "--pre", "--parent", os.path.join(w, "g0"))
                rows.append((full, pre, inc, untracked, tracked))
            finally:
                p.kill()
                p.wait()
                shutil.rmtree(w, ignore_errors=True)
        med = lambda f: statistics.median(f(r) for r in rows)  # noqa: E731
        full_ms, full_mib = med(lambda r: r[0]["frozen_ms"]), med(lambda r: r[0]["image_bytes"] / 2**20)
        inc_ms, inc_mib = med(lambda r: r[2]["frozen_ms"]), med(lambda r: r[2]["image_bytes"] / 2**20)
        print("%-8g | %8.1f %11.1f | %8.1f (%4.2fx full) | %7.1f %8.1f %6.2f s (%.3fx bytes) | %.3f  %.3f" %
              (rate, full_ms, full_mib, med(lambda r: r[1]["frozen_ms"]), med(lambda r: r[1]["frozen_ms"]) / full_ms,
               inc_ms, inc_mib, med(lambda r: r[2]["wall_s"]), inc_mib / full_mib,
               med(lambda r: r[3]), med(lambda r: r[4])), flush=True)


if __name__ == "__main__":
    main()
