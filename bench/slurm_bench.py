#!/usr/bin/env python3
"""Moving a Slurm job with 1 GiB of state from one node to another
(docs/performance.md, "Batch schedulers").

  python3 bench/slurm_bench.py [--mib 1024] [--reps 3] [--policies direct,page-cache]

Needs root, slurm-wlm and munge, and the release build (build/bin: ckpt,
migrate_state). Each repetition starts a test cluster (tests/lib/slurm.py:
munged and slurmctld in one namespace host, slurmd n1 and n2 in one each,
on this machine), submits
`exec ckpt job -- migrate_state MIB` on n1, waits until its state is
filled, then runs `ckpt evacuate n1` and times, from the evacuation's
start to the program's first safepoint on n2:

- checkpoint: the warning signal to the image written and the program gone
  (ckpt job's record), and beside it raw writes of the same number of bytes
  into the same directory, measured in the same run: through the page cache
  (dd conv=fsync) and straight to the disk (dd oflag=direct conv=fsync),
  then the direct read of the latter (dd iflag=direct): a direct write and
  a direct read are the floor of a checkpoint and a resume through this disk;
- scheduler: the requeue to the job starting on n2 (Slurm's requeue delay,
  which cred_expire=5 and 1 s scheduling intervals bound here);
- resume: ckpt job starting on n2 to the program's first safepoint (its
  "ready" line), image read included; of it, resume_check is ckpt job
  verifying the image before it starts the program;
- from scratch: what a requeue without ckpt costs instead, the work done
  before the signal (here the state's fill) done again.

The lost work of each move is read from `ckpt evacuate --json`. Each
repetition moves the job once per policy, taking turns: `direct` (the
library's default, images written past the page cache) and `page-cache`
(CKPT_PAGE_CACHE=1 in the job's environment).
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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))
import slurm  # noqa: E402
from ckpttest import wait_for  # noqa: E402

BIN = os.path.join(HERE, "..", "build", "bin")


def ready_lines(out):
    try:
        return [l for l in open(out).read().splitlines() if l.startswith("ready ")]
    except OSError:
        return []


def dd(*args):
    t0 = time.time()
    subprocess.run(["dd", "status=none"] + list(args), check=True, capture_output=True)
    return time.time() - t0


def raw_io(d, mib):
    """The same bytes written and read back by dd in the images' directory:
    through the page cache (write + fsync), and straight to and from the disk
    (O_DIRECT write + fsync, then O_DIRECT read): the floor of a checkpoint
    and a resume through this disk."""
    path = os.path.join(d, "raw")
    try:
        cached = dd("if=/dev/zero", "of=" + path, "bs=1M", "count=%d" % mib, "conv=fsync")
        os.unlink(path)
        direct = dd("if=/dev/zero", "of=" + path, "bs=8M", "count=%d" % (mib // 8), "oflag=direct", "conv=fsync")
        read = dd("if=" + path, "of=/dev/null", "bs=16M", "iflag=direct")
    finally:
        if os.path.exists(path):
            os.unlink(path)
    return cached, direct, read


def one(work, mib, policy):
    ckpt, state = os.path.join(BIN, "ckpt"), os.path.join(BIN, "migrate_state")
    d, out = os.path.join(work, "images"), os.path.join(work, "job.out")
    with slurm.Cluster(os.path.join(work, "cluster")) as c:
        env = c.env(CKPT_RUNTIME_DIR="/run/ckpt-bench")  # each host's own
        if policy == "page-cache":
            env["CKPT_PAGE_CACHE"] = "1"  # the job's environment, and so the program's
        c.run(["scontrol", "update", "nodename=n2", "state=drain", "reason=bench"])
        script = "\n".join(["#!/bin/sh", "#SBATCH --requeue", "#SBATCH --open-mode=append", "#SBATCH -o " + out,
                            "exec %s job --dir %s -- %s %d 900" % (ckpt, d, state, mib), ""])
        t_submit = time.time()
        jid = c.sbatch(script, env=env)
        c.wait_state(jid, ["RUNNING"], node="n1")
        t_run = time.time()
        wait_for(lambda: ready_lines(out), "the state filled", timeout=300, interval=0.01)
        t_ready = time.time()
        c.run(["scontrol", "update", "nodename=n2", "state=resume"])
        raw, raw_direct, raw_read = raw_io(d, mib)
        t0 = time.time()
        p = c.run([ckpt, "evacuate", "n1", "--json", "--timeout", "300"], check=False, env=env, timeout=400)
        if p.returncode != 0:
            raise RuntimeError("ckpt evacuate: %s %s" % (p.stdout, p.stderr))
        wait_for(lambda: len(ready_lines(out)) >= 2, "the program's first safepoint on n2", timeout=300,
                 interval=0.01)
        t_back = time.time()
        rep = json.loads(p.stdout)["jobs"][0]
        ev = json.load(open(os.path.join(d, "job.json")))["events"]
        ck = [e for e in ev if e["event"] == "checkpoint"][-1]
        rq = [e for e in ev if e["event"] == "requeue"][-1]
        rs = [e for e in ev if e["event"] == "resume"][-1]
        c.run(["scancel", jid], check=False)
    return {"policy": policy, "total": t_back - t0, "checkpoint": ck["seconds"], "raw_write": raw,
            "raw_write_direct": raw_direct, "raw_read_direct": raw_read,
            "signal_to_image": ck["time"] - t0, "scheduler": rs["began"] - rq["time"],
            "resume": t_back - rs["began"], "resume_check": rs["time"] - rs["began"], "from_scratch": t_ready - t_run, "lost_work": rep["lost_work"],
            "resumed_on": rep["resumed_on"], "queue_first_start": t_run - t_submit}


def summary(mib, rows):
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0] if isinstance(rows[0][k], float)}
    print("\n%s, %d MiB, median of %d: warning signal -> running on n2 %.2f s = checkpoint %.2f s + scheduler "
          "%.2f s + resume %.2f s (of it the image check %.2f s); from scratch the job would redo %.2f s of work; "
          "lost work: %s" %
          (rows[0]["policy"], mib, len(rows), med["total"], med["checkpoint"], med["scheduler"], med["resume"],
           med["resume_check"], med["from_scratch"], ", ".join(sorted(set(r["lost_work"] for r in rows)))))
    floor = med["raw_write_direct"] + med["raw_read_direct"]
    print("  ckpt's part (checkpoint + resume): %.2f s; raw write of the same bytes + fsync %.2f s (checkpoint "
          "%.2fx), direct %.2f s (%.2fx); raw direct write + direct read, the disk's floor for both: %.2f s "
          "(ckpt's part %.2fx)" %
          (med["checkpoint"] + med["resume"], med["raw_write"], med["checkpoint"] / med["raw_write"],
           med["raw_write_direct"], med["checkpoint"] / med["raw_write_direct"], floor,
           (med["checkpoint"] + med["resume"]) / floor))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--policies", default="direct,page-cache",
                    help="how the program writes its images, taking turns: direct (the default: past the page "
                         "cache) and page-cache (CKPT_PAGE_CACHE=1)")
    a = ap.parse_args()
    why = slurm.missing()
    if why:
        print("slurm_bench: " + why)
        return 77
    policies = [p for p in a.policies.split(",") if p]
    for p in policies:
        if p not in ("direct", "page-cache"):
            print("slurm_bench: unknown policy %r (direct, page-cache)" % p)
            return 2
    rows = {p: [] for p in policies}
    for i in range(a.reps):
        for p in policies[i % len(policies):] + policies[:i % len(policies)]:
            work = tempfile.mkdtemp(prefix="ckpt-slurm-bench-", dir="/var/tmp")
            os.chmod(work, 0o755)
            try:
                r = one(work, a.mib, p)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            rows[p].append(r)
            print("rep %d: %s" % (i + 1, json.dumps({k: (round(v, 3) if isinstance(v, float) else v)
                                                     for k, v in r.items()})), flush=True)
    for p in policies:
        summary(a.mib, rows[p])
    return 0


if __name__ == "__main__":
    sys.exit(main())
