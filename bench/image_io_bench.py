#!/usr/bin/env python3
"""A program's checkpoint and resume through the disk, with the image written
past the page cache (the library's default) and through it
(CKPT_PAGE_CACHE=1), beside dd writing and reading the same bytes in the same
directory (docs/performance.md, "Batch schedulers").

  python3 bench/image_io_bench.py [--mib 1024] [--reps 3] [--dir /var/tmp]

Each repetition, for each policy in turn: `migrate_state MIB` fills its
state and checkpoints at its first safepoint (--ckpt-stop-at 1, exit 75;
the library's "written ... in S s": the image written and synced); then it
resumes from that image as the write left the page cache ("resume after"),
and again after the image was dropped from the page cache ("cold resume";
the library's "read in S s": the image read into the program's variables).
Baselines in the same repetition: dd of the same number of bytes through
the page cache (conv=fsync) and straight to the disk (oflag=direct
conv=fsync), and the direct read back (iflag=direct). Needs the release
build (build/bin/migrate_state).
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))
from ckpttest import evict  # noqa: E402

STATE = os.path.join(HERE, "..", "build", "bin", "migrate_state")


def dd(*args):
    t0 = time.time()
    subprocess.run(["dd", "status=none"] + list(args), check=True, capture_output=True)
    return time.time() - t0


def seconds(pattern, text, what):
    m = re.search(pattern, text)
    if not m:
        sys.exit("image_io_bench: no %s in: %s" % (what, text))
    return float(m.group(1))


def one(d, mib, policy):
    env = dict(os.environ)
    env.pop("CKPT_PAGE_CACHE", None)
    if policy == "page-cache":
        env["CKPT_PAGE_CACHE"] = "1"
    shutil.rmtree(d, ignore_errors=True)
    p = subprocess.run([STATE, str(mib), "60", "--ckpt-dir", d, "--ckpt-stop-at", "1", "--ckpt-no-listen"],
                       capture_output=True, text=True, env=env)
    if p.returncode != 75:
        sys.exit("image_io_bench: the checkpoint failed (%d): %s" % (p.returncode, p.stderr))
    r = {"checkpoint": seconds(r"written to \S+ in ([0-9.]+) s", p.stderr, "checkpoint time")}
    image = os.path.join(d, os.listdir(d)[0])
    for key in ("resume_after", "resume_cold"):
        if key == "resume_cold":
            evict(image)
        p = subprocess.run([STATE, str(mib), "0.01", "--ckpt-dir", d, "--ckpt-resume", image, "--ckpt-no-listen"],
                           capture_output=True, text=True, env=env)
        if p.returncode != 0 or "ready %d words" % (mib << 17) not in p.stdout:
            sys.exit("image_io_bench: the resume failed (%d): %s" % (p.returncode, p.stderr))
        r[key] = seconds(r"read in ([0-9.]+) s", p.stderr, "resume time")
    shutil.rmtree(d, ignore_errors=True)
    return r


def raw(d, mib):
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "raw")
    cached = dd("if=/dev/zero", "of=" + path, "bs=1M", "count=%d" % mib, "conv=fsync")
    os.unlink(path)
    direct = dd("if=/dev/zero", "of=" + path, "bs=8M", "count=%d" % (mib // 8), "oflag=direct", "conv=fsync")
    read = dd("if=" + path, "of=/dev/null", "bs=16M", "iflag=direct")
    shutil.rmtree(d, ignore_errors=True)
    return {"dd_write_cached": cached, "dd_write_direct": direct, "dd_read_direct": read}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--dir", default="/var/tmp", help="where the images go (a disk, not tmpfs)")
    a = ap.parse_args()
    if not os.path.exists(STATE):
        sys.exit("image_io_bench: %s is missing: build the release preset first" % STATE)
    work = tempfile.mkdtemp(prefix="ckpt-image-io-", dir=a.dir)
    policies = ["direct", "page-cache"]
    rows = {p: [] for p in policies}
    base = []
    try:
        for i in range(a.reps):
            base.append(raw(os.path.join(work, "raw"), a.mib))
            for p in policies[i % 2:] + policies[:i % 2]:
                r = one(os.path.join(work, p), a.mib, p)
                rows[p].append(r)
                print("rep %d %-10s %s" % (i + 1, p, " ".join("%s=%.3f" % kv for kv in r.items())), flush=True)
            print("rep %d %-10s %s" % (i + 1, "dd", " ".join("%s=%.3f" % kv for kv in base[-1].items())),
                  flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = lambda rs, k: statistics.median(r[k] for r in rs)  # noqa: E731
    b = {k: med(base, k) for k in base[0]}
    print("\n%d MiB in %s, medians of %d: dd write + fsync %.3f s, dd direct write + fsync %.3f s, dd direct "
          "read %.3f s" % (a.mib, a.dir, a.reps, b["dd_write_cached"], b["dd_write_direct"], b["dd_read_direct"]))
    print("| policy | checkpoint s | / dd direct write | / dd write | resume after s | cold resume s | "
          "checkpoint + cold resume / (dd direct write + read) |")
    print("|---|---|---|---|---|---|---|")
    for p in policies:
        c, ra, rc = med(rows[p], "checkpoint"), med(rows[p], "resume_after"), med(rows[p], "resume_cold")
        print("| %s | %.3f | %.2fx | %.2fx | %.3f | %.3f | %.2fx |" %
              (p, c, c / b["dd_write_direct"], c / b["dd_write_cached"], ra, rc,
               (c + rc) / (b["dd_write_direct"] + b["dd_read_direct"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
