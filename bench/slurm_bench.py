#!/usr/bin/env python3
"""Moving a Slurm job with 1 GiB of state from one node to another
(docs/performance.md, "Batch schedulers").

  python3 bench/slurm_bench.py [--mib 1024] [--reps 3]

Needs root, slurm-wlm and munge, and the release build (build/bin: ckpt,
migrate_state). Each repetition starts a test cluster (tests/lib/slurm.py:
munged and slurmctld in one namespace host, slurmd n1 and n2 in one each,
on this machine), submits
`exec ckpt job -- migrate_state MIB` on n1, waits until its state is
filled, then runs `ckpt evacuate n1` and times, from the evacuation's
start to the program's first safepoint on n2:

- checkpoint: the warning signal to the image written and the program gone
  (ckpt job's record), and beside it a raw write of the same number of bytes
  into the same directory (dd, fsync), measured in the same run;
- scheduler: the requeue to the job starting on n2 (Slurm's requeue delay,
  which cred_expire=5 and 1 s scheduling intervals bound here);
- resume: ckpt job starting on n2 to the program's first safepoint (its
  "ready" line), image read included; of it, resume_check is ckpt job
  verifying the image before it starts the program;
- from scratch: what a requeue without ckpt costs instead, the work done
  before the signal (here the state's fill) done again.

The lost work of each move is read from `ckpt evacuate --json`.
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


def raw_write(d, mib):
    path = os.path.join(d, "raw")
    t0 = time.time()
    subprocess.run(["dd", "if=/dev/zero", "of=" + path, "bs=1M", "count=%d" % mib, "conv=fsync"], check=True,
                   capture_output=True)
    t = time.time() - t0
    os.unlink(path)
    return t


def one(work, mib):
    ckpt, state = os.path.join(BIN, "ckpt"), os.path.join(BIN, "migrate_state")
    d, out = os.path.join(work, "images"), os.path.join(work, "job.out")
    with slurm.Cluster(os.path.join(work, "cluster")) as c:
        env = c.env(CKPT_RUNTIME_DIR="/run/ckpt-bench")  # each host's own
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
        raw = raw_write(d, mib)
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
    return {"total": t_back - t0, "checkpoint": ck["seconds"], "raw_write": raw,
            "signal_to_image": ck["time"] - t0, "scheduler": rs["began"] - rq["time"],
            "resume": t_back - rs["began"], "resume_check": rs["time"] - rs["began"], "from_scratch": t_ready - t_run, "lost_work": rep["lost_work"],
            "resumed_on": rep["resumed_on"], "queue_first_start": t_run - t_submit}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    why = slurm.missing()
    if why:
        print("slurm_bench: " + why)
        return 77
    rows = []
    for i in range(a.reps):
        work = tempfile.mkdtemp(prefix="ckpt-slurm-bench-", dir="/var/tmp")
        os.chmod(work, 0o755)
        try:
            r = one(work, a.mib)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        rows.append(r)
        print("rep %d: %s" % (i + 1, json.dumps({k: (round(v, 3) if isinstance(v, float) else v)
                                                 for k, v in r.items()})), flush=True)
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0] if isinstance(rows[0][k], float)}
    print("\n%d MiB, median of %d: warning signal -> running on n2 %.2f s = checkpoint %.2f s (raw write of the "
          "same bytes %.2f s: %.2fx) + scheduler %.2f s + resume %.2f s; from scratch the job would redo "
          "%.2f s of work; lost work: %s" %
          (a.mib, len(rows), med["total"], med["checkpoint"], med["raw_write"],
           med["checkpoint"] / med["raw_write"], med["scheduler"], med["resume"], med["from_scratch"],
           ", ".join(sorted(set(r["lost_work"] for r in rows)))))
    print("ckpt's part (checkpoint + resume): %.2f s" % (med["checkpoint"] + med["resume"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
