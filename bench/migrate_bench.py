#!/usr/bin/env python3
"""The paper's CKPT figure: time and space overhead of migrating a computation
once from Linux x86-64 to Windows (Wine) with a checkpoint and a resume,
relative to uninterrupted runs measured in the same session.

  time overhead  = (T_linux_part + T_windows_part) / (T_linux / 2 + T_windows / 2) - 1
  space overhead = image bytes / raw state bytes - 1

T_linux_part runs the first half of the steps and writes the image;
T_windows_part starts the Windows build under Wine, resumes, runs the second
half. The baseline is the same halves without any checkpoint: half of each
uninterrupted run. Process start-up (Wine's included) is on both sides.

  migrate_bench.py [--n 1024] [--steps 600] [--reps 3]
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

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BIN = os.path.join(ROOT, "build", "bin")
WIN = os.path.join(ROOT, "build", "windows-x64", "bin")


def timed(cmd, cwd, ok=(0,)):
    env = dict(os.environ, WINEDEBUG="-all")
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if p.returncode not in ok:
        sys.exit("%s failed (%d): %s" % (cmd, p.returncode, p.stderr))
    return dt, p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--codec", default="none")
    a = ap.parse_args()
    heat, heat_exe = os.path.join(BIN, "heat"), os.path.join(WIN, "heat.exe")
    if not os.path.exists(heat_exe) or not shutil.which("wine"):
        sys.exit("needs the Windows build (make cross) and wine")
    # Our own wineserver, detached from our pipes (see scripts/demo.py).
    subprocess.run(["wineserver", "-p60"], check=False, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    args = [str(a.n), str(a.steps)]
    t_lin, t_win, t_a, t_b, sizes, states, ckpt_secs, read_secs = [], [], [], [], [], [], [], []
    ref = None
    for rep in range(a.reps):
        work = tempfile.mkdtemp(prefix="ckpt-migrate-")
        try:
            dt, p = timed([heat] + args, work)
            t_lin.append(dt)
            ref = p.stdout.strip()
            dt, p = timed(["wine", heat_exe] + args, work)
            t_win.append(dt)
            assert p.stdout.strip() == ref, "Windows run differs"
            dt, p = timed([heat] + args + ["--ckpt-dir", ".", "--ckpt-stop-at", str(a.steps // 2), "--ckpt-codec",
                                            a.codec], work, ok=(75,))
            t_a.append(dt)
            for line in p.stderr.splitlines():
                if " written to " in line and " in " in line:
                    ckpt_secs.append(float(line.rsplit(" in ", 1)[1].split()[0]))
            img = [f for f in os.listdir(work) if f.endswith(".ckpt")][0]
            sizes.append(os.path.getsize(os.path.join(work, img)))
            j = json.loads(subprocess.run([os.path.join(BIN, "ckpt"), "inspect", "--json", "--no-verify", img],
                                          cwd=work, capture_output=True, text=True, check=True).stdout)
            states.append(sum(v["raw_bytes"] for v in j["variables"]))
            dt, p = timed(["wine", heat_exe, "--ckpt-resume", img, "--ckpt-dir", "w"], work)
            t_b.append(dt)
            for line in p.stderr.splitlines():
                if "resumed from" in line and "read in" in line:
                    read_secs.append(float(line.rsplit("read in ", 1)[1].split()[0]))
            assert p.stdout.strip() == ref, "migrated run differs:\n%s\n%s" % (p.stdout, ref)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    m = statistics.median
    base = m(t_lin) / 2 + m(t_win) / 2
    mig = m(t_a) + m(t_b)
    print("heat %dx%d, %d steps, codec %s, medians of %d" % (a.n, a.n, a.steps, a.codec, a.reps))
    print("  uninterrupted: Linux %.3f s, Windows/Wine %.3f s" % (m(t_lin), m(t_win)))
    print("  migrated: Linux half + checkpoint %.3f s, Wine resume + half %.3f s (checkpoint write %.3f s)" %
          (m(t_a), m(t_b), m(ckpt_secs) if ckpt_secs else float("nan")))
    print("  time overhead of one Linux -> Windows migration: %+.1f %%  (paper: 43 %%)" % (100 * (mig / base - 1)))
    direct = (m(ckpt_secs) + m(read_secs)) if ckpt_secs and read_secs else float("nan")
    print("  of which checkpoint write + image read inside the programs: %.3f s = %.2f %% of the uninterrupted run"
          " (the rest is starting a second process, Wine's start-up included)" % (direct, 100 * direct / base))
    print("  image %d bytes for %d bytes of state: space overhead %+.3f %%  (paper: 20 %%)" %
          (m(sizes), m(states), 100 * (m(sizes) / m(states) - 1)))
    print("  result identical to the uninterrupted runs: yes")


if __name__ == "__main__":
    main()
