#!/usr/bin/env python3
"""Overheads of preserving a group's communication state (docs/performance.md,
"Dependent process groups"). Runs two-member groups of bench/group_member
under `ckpt run`, natively and (if built) as Windows programs under Wine, and
prints, from the coordinator's per-checkpoint phase timings in the same run:

  time overhead  = time spent capturing the communication state (object table,
                   semaphore counts, segment bytes) / time of the rest of the
                   group checkpoint (quiescence + the members' own state)
  space overhead = communication-state bytes that are not segment payload
                   (GROUP + OBJECTS sections, segment section framing) / image size

and checkpoint and restore times against the group's total state size.

  group_bench.py --bin build/bin [--winbin build/windows-x64/bin] [--checkpoints N]
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

LINE = re.compile(r"checkpoint (\d+) written to (\S+) in ([\d.]+) s \(quiesce ([\d.]+) s, communication state "
                  r"([\d.]+) s / (\d+) bytes, members ([\d.]+) s / (\d+) bytes\)")


def run_config(ckpt, launcher, member, priv_mib, shared_kib, checkpoints, work, env):
    d = tempfile.mkdtemp(dir=work)
    cmd = [ckpt, "run", "-n", "2", "--name", "b", "--dir", d, "--every", "0.25", "--stop-after", str(checkpoints),
           "--keep", "1", "--"] + launcher + [member, str(priv_mib), str(shared_kib)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if p.returncode != 75:
        sys.exit("group run failed (%d):\n%s" % (p.returncode, p.stderr))
    rows = [LINE.search(l) for l in p.stderr.splitlines()]
    rows = [[float(x) for x in m.groups()[2:]] for m in rows if m]
    rows = rows[1:] if len(rows) > 2 else rows  # the first one warms caches and files up
    total = sum(r[0] for r in rows)
    comm = sum(r[2] for r in rows)
    img = [f for f in os.listdir(d) if f.endswith(".ckpt")][0]
    path = os.path.join(d, img)
    j = json.loads(subprocess.run([ckpt, "inspect", "--json", path], capture_output=True, text=True).stdout)
    size = j["size"]
    meta_bytes = sum(s["stored_bytes"] for s in j["sections"] if s["type"] in (16, 17))
    framing = sum(s["stored_bytes"] - s["raw_bytes"] for s in j["sections"] if s["type"] == 18)
    payload = sum(s["raw_bytes"] for s in j["sections"] if s["type"] == 18)
    # Restore: resume and stop at the members' first safepoint (which writes
    # one more checkpoint; its reported time is subtracted).
    renv = dict(env, CKPT_STOP_AT="1")
    t0 = time.perf_counter()
    q = subprocess.run([ckpt, "resume", path, "--dir", d], capture_output=True, text=True, env=renv, timeout=600)
    wall = time.perf_counter() - t0
    m = [LINE.search(l) for l in q.stderr.splitlines()]
    m = [x for x in m if x]
    if q.returncode != 75 or not m:
        sys.exit("resume failed (%d):\n%s" % (q.returncode, q.stderr))
    restore = wall - float(m[-1].group(3))
    shutil.rmtree(d, ignore_errors=True)
    return {
        "checkpoints": len(rows), "ckpt_s": total / len(rows), "comm_s": comm / len(rows),
        "time_overhead": comm / (total - comm), "image": size, "payload": payload,
        "space_overhead": (meta_bytes + framing) / size, "restore_s": restore,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--winbin", default="")
    ap.add_argument("--checkpoints", type=int, default=8)
    a = ap.parse_args()
    ckpt = os.path.abspath(os.path.join(a.bin, "ckpt"))
    env = dict(os.environ, WINEDEBUG="-all")
    platforms = [("linux", [], os.path.abspath(os.path.join(a.bin, "group_member")))]
    wm = os.path.abspath(os.path.join(a.winbin, "group_member.exe")) if a.winbin else ""
    if wm and os.path.exists(wm) and shutil.which("wine"):
        subprocess.run(["wineserver", "-p60"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["wine", wm, "0", "0"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, env=dict(env, CKPT_STOP_AT="1"))
        platforms.append(("windows (wine)", ["wine"], wm))
    configs = [(16, 64), (64, 1024), (4, 16384)]
    work = tempfile.mkdtemp(prefix="ckpt-group-bench-")
    print("%-15s %9s %9s %10s %11s %10s %9s %9s %9s %10s" % (
        "platform", "own MiB", "shm KiB", "image", "ckpt ms", "comm ms", "time ovh", "space ovh", "MB/s",
        "restore ms"))
    for name, launcher, member in platforms:
        for priv, shared in configs:
            r = run_config(ckpt, launcher, member, priv, shared, a.checkpoints, work, env)
            print("%-15s %9d %9d %10d %11.2f %10.3f %8.3f%% %8.4f%% %9.0f %10.1f" % (
                name, priv * 2, shared, r["image"], r["ckpt_s"] * 1e3, r["comm_s"] * 1e3,
                100 * r["time_overhead"], 100 * r["space_overhead"], r["image"] / r["ckpt_s"] / 1e6,
                r["restore_s"] * 1e3))
    print("paper: Linux 8.5 % time / 0.55 % space; Windows 7.5 % / 25 %. Goal: <= 2 % time, <= 0.1 % space.")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
