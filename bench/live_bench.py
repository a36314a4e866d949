#!/usr/bin/env python3
"""Live migration against cold migration, in one run (docs/performance.md):
`ckpt migrate PID --to ssh://b` cold, `--live`, `--lazy` (post-copy) and
`--live --lazy` (hybrid) of a process with MIB MiB populated that writes pages at a chosen rate (bench/dirty_worker),
between two hosts made by tests/lib/hosts.py (namespaces, veth, sshd each;
the spools are tmpfs).

Per dirty rate and mode, the medians over --reps of: downtime (ckpt's
--json: from the final freeze to DONE), total time, bytes sent / memory
(rounds, final image, pages sent after the process ran), rounds, the
target's fill after the process ran, the worker's slowdown (the time its
stores took each second beyond what they took before the migration, in
percent of its time) while the pre-copy rounds tracked it ("tracked%":
write-protect faults, and a round's pause when it fell inside a store
loop) and after the handoff while pages were still coming ("after%": a
touch of a missing page waits for it), and why the pre-copy stopped.

With --criu PATH (upstream CRIU built outside the repository), a third row
per rate: CRIU's cold migration of the same worker in the same run (criu
dump -> scp -r -> criu restore -d, images in the hosts' /dev/shm; its
downtime is the whole of it), after one `criu pre-dump --track-mem` whose
answer is printed (on kernels without soft-dirty it refuses: CRIU's
pre-copy cannot run there).

  live_bench.py [--mib 1024] [--rates 0,10,50,200] [--reps 3] [--modes cold,live,lazy,hybrid]
                [--criu PATH]
Needs root and the release build (build/bin: ckpt, dirty_worker).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import ckpttest as ck  # noqa: E402
import hosts as H  # noqa: E402

CKPT = os.path.join(ck.BIN, "ckpt")
WORKER = os.path.join(ck.BIN, "dirty_worker")
RT = "/run/ckpt"


MODES = {"cold": [], "live": ["--live"], "lazy": ["--lazy"], "hybrid": ["--live", "--lazy"]}


def one(hosts, mib, rate, mode, floor):
    a, b = hosts["a"], hosts["b"]
    work = ck.tempdir("live-bench")
    out = os.path.join(work, "worker.out")
    a.run(["sh", "-c", "echo %d > /proc/sys/kernel/ns_last_pid" % floor], check=True)
    p = a.popen([WORKER, str(mib), str(rate)], stdin=open(os.devnull), stdout=open(out, "w"),
                stderr=open(os.devnull, "w"), start_new_session=True)
    ck.wait_for(lambda: "ready" in open(out).read(), "the worker", 120)
    time.sleep(3)
    before = seconds(out)
    seen, stop = [], threading.Event()  # (time, lines so far): when each second's line came
    watcher = threading.Thread(target=watch, args=(out, seen, stop))
    watcher.start()
    t0 = time.monotonic()
    argv = [CKPT, "migrate", str(p.ns_pid), "--to", b.url, "--ssh", hosts.ssh_command, "--json",
            "--remote-spool", hosts.spool, "--remote-ckpt", CKPT] + MODES[mode]
    try:
        r = a.run(argv, capture_output=True, text=True, timeout=600, env=ck.env(CKPT_RUNTIME_DIR=RT))
    except subprocess.TimeoutExpired:
        stuck(argv)
        raise
    t1 = time.monotonic()
    stop.set()
    watcher.join()
    rows = seconds(out)
    b.run(["kill", "-9", str(p.ns_pid)], capture_output=True)
    a.run(["kill", "-9", str(p.ns_pid)], capture_output=True)
    if r.returncode != 0:
        sys.exit("migrate failed:\n" + r.stderr)
    if r.stderr.strip():
        sys.stderr.write(r.stderr)
    j = json.loads(r.stdout)
    rounds = j.get("live", {}).get("rounds", [])
    post = j.get("postcopy", {})
    sent = j["image_bytes"] + sum(x["bytes"] for x in rounds) + post.get("bytes", 0)
    lazy = post or j.get("live", {}).get("lazy", {})
    # The pre-copy rounds (tracked), and the fill after the handoff (a touch
    # of a missing page waits for it).
    precopy_s = sum(x["ms"] for x in rounds) / 1e3
    fill_s = lazy.get("fill_ms", 0) / 1e3
    tracked = [rows[i] for i in lines_between(seen, len(before), t0, t0 + precopy_s)]
    after = [rows[i] for i in lines_between(seen, len(before), t1 - fill_s, t1)]
    return {"downtime_ms": j["downtime_ms"], "total_ms": j["total_ms"], "sent": sent / (mib * 2 ** 20),
            "rounds": len(rounds), "final_mib": j["image_bytes"] / 2 ** 20,
            "pause_ms": max([x.get("frozen_ms", 0) for x in rounds] or [0]),
            "fill_ms": lazy.get("fill_ms", 0), "why": j.get("live", {}).get("convergence", ""),
            "tracked": slowdown(before, tracked), "after": slowdown(before, after)}


def seconds(out):
    """The worker's lines so far: (page stores, microseconds they took) per second."""
    rows = []
    for line in open(out).read().splitlines():
        f = line.split()
        if len(f) == 2 and f[0].isdigit():
            rows.append((int(f[0]), float(f[1])))
    return rows


def watch(out, seen, stop):
    while not stop.wait(0.1):
        seen.append((time.monotonic(), len(seconds(out))))


def lines_between(seen, first, ta, tb):
    """The worker's lines (indexes from `first` on) that came between ta and tb."""
    done = first
    out = []
    for t, n in seen:
        if ta <= t <= tb:
            out += range(done, n)
        done = max(done, n)
    return out


def slowdown(before, during):
    """The worker's time in its stores during the migration (tracked by the
    pre-copy; waiting for pages on the target after a post-copy handoff)
    beyond what they took before, in percent of its time."""
    if not before or not during:
        return float("nan")  # no line of the worker came then (a window under a second)
    mean = lambda rows: sum(us for _, us in rows) / len(rows)  # noqa: E731
    return (mean(during) - mean(before)) / 1e4


def median(rows, k):
    vals = [r[k] for r in rows if r[k] == r[k]]  # NaN: not measured in that repetition
    return statistics.median(vals) if vals else float("nan")


def stuck(argv):
    """A migration that did not end: what its processes wait on (gdb, where installed)."""
    sys.stderr.write("timed out: %s\n" % " ".join(argv))
    os.system("ps -eo pid,ppid,stat,wchan:30,args | grep -E 'ckpt|dirty_worker' | grep -v grep >&2")
    if shutil.which("gdb"):
        os.system("for p in $(pgrep -f 'ckpt (migrate|receive)'); do echo == $p >&2; "
                  "gdb -p $p -batch -ex 'thread apply all bt 12' 2>/dev/null | grep -E '^#|^Thread' >&2; done")


def start_setsid_worker(host, mib, rate, out, floor):
    """The worker as CRIU needs it: its own session, /dev/null, a file."""
    host.run(["sh", "-c", "echo %d > /proc/sys/kernel/ns_last_pid" % floor], check=True)
    p = host.popen(["sh", "-c", 'exec setsid "$0" "$1" "$2" </dev/null >"$3" 2>/dev/null', WORKER, str(mib),
                    str(rate), out], stdin=open(os.devnull), stdout=open(os.devnull, "w"),
                   stderr=open(os.devnull, "w"), start_new_session=True)
    ck.wait_for(lambda: os.path.exists(out) and "ready" in open(out).read(), "the worker", 120)
    return p


def criu_predump(hosts, criu, floor):
    """What `criu pre-dump --track-mem` says here (CRIU's pre-copy)."""
    a = hosts["a"]
    work = ck.tempdir("live-bench-criu")
    out = os.path.join(work, "worker.out")
    p = start_setsid_worker(a, 16, 0, out, floor)
    a.run(["rm", "-rf", "/dev/shm/criu-pre"], check=True)
    a.run(["mkdir", "/dev/shm/criu-pre"], check=True)
    r = a.run([criu, "pre-dump", "-t", str(p.ns_pid), "-D", "/dev/shm/criu-pre", "--track-mem", "-o", "pre.log"],
              capture_output=True, text=True, timeout=120)
    log = open(a.path("/dev/shm/criu-pre/pre.log"), errors="replace").read()
    errors = [l.split("): ", 1)[-1].strip() for l in log.splitlines() if "Error" in l]
    a.run(["kill", "-9", str(p.ns_pid)], capture_output=True)
    a.run(["rm", "-rf", "/dev/shm/criu-pre"], check=True)
    shutil.rmtree(work, ignore_errors=True)
    if r.returncode == 0:
        return "criu pre-dump --track-mem: works on this kernel (exit 0)"
    return "criu pre-dump --track-mem: exit %d: %s" % (r.returncode, "; ".join(errors[:2]) or r.stderr.strip())


def criu_cold(hosts, mib, rate, floor, criu):
    """CRIU's cold migration of the same worker: dump -> scp -r -> restore."""
    a, b = hosts["a"], hosts["b"]
    work = ck.tempdir("live-bench-criu")
    out = os.path.join(work, "worker.out")
    p = start_setsid_worker(a, mib, rate, out, floor)
    time.sleep(2)
    for h in (a, b):
        h.run(["rm", "-rf", "/dev/shm/criu-img"], check=True)
    a.run(["mkdir", "/dev/shm/criu-img"], check=True)
    t0 = time.perf_counter()
    steps = [(a, [criu, "dump", "-t", str(p.ns_pid), "-D", "/dev/shm/criu-img", "-o", "dump.log"], "dump"),
             (a, ["scp", "-q", "-r", "-F", hosts.ssh_config, "/dev/shm/criu-img", "b:/dev/shm/"], "scp"),
             (b, [criu, "restore", "-D", "/dev/shm/criu-img", "-d", "-o", "restore.log"], "restore")]
    for host, argv, what in steps:
        r = host.run(argv, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            a.run(["kill", "-9", str(p.ns_pid)], capture_output=True)
            sys.exit("criu %s failed (%d): %s%s" % (what, r.returncode, r.stdout, r.stderr))
    wall_ms = (time.perf_counter() - t0) * 1000
    size = sum(os.path.getsize(os.path.join(a.path("/dev/shm/criu-img"), f))
               for f in os.listdir(a.path("/dev/shm/criu-img")))
    alive = b.run(["kill", "-0", str(p.ns_pid)], capture_output=True).returncode == 0
    b.run(["kill", "-9", str(p.ns_pid)], capture_output=True)
    for h in (a, b):
        h.run(["rm", "-rf", "/dev/shm/criu-img"], check=True)
    shutil.rmtree(work, ignore_errors=True)
    if not alive:
        sys.exit("criu restored no running worker on b")
    return {"downtime_ms": wall_ms, "total_ms": wall_ms, "sent": size / (mib * 2 ** 20), "rounds": 0,
            "final_mib": size / 2 ** 20, "pause_ms": 0, "fill_ms": 0, "why": "", "tracked": float("nan"),
            "after": float("nan")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--rates", default="0,10,50,200")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--modes", default="cold,live,lazy,hybrid",
                    help="cold, live (--live), lazy (--lazy: post-copy), hybrid (--live --lazy)")
    ap.add_argument("--criu", help="an upstream CRIU binary (built outside the repository): adds its cold row")
    a = ap.parse_args()
    ssh_env = {"CKPT_RUNTIME_DIR": RT, "PATH": ck.BIN + ":/usr/sbin:/usr/bin:/sbin:/bin"}
    spool = "%dM" % (a.mib * 6)  # rounds at 200 MB/s add up to ~3x the memory, post-copy pages beside
    print("%d MiB over ssh between two namespace hosts, medians of %d" % (a.mib, a.reps))
    print("%-6s %-6s | %11s %10s %12s %7s %10s %13s %8s %9s %7s  %s" % (
        "MB/s", "mode", "downtime ms", "total ms", "sent/memory", "rounds", "final MiB", "max pause ms",
        "fill ms", "tracked%", "after%", "pre-copy stopped"))
    floor = 30000
    with H.Hosts(("a", "b"), spool_size={"a": spool, "b": spool}, ssh_env=ssh_env) as hosts:
        if a.criu:
            floor += 10
            print(criu_predump(hosts, a.criu, floor), flush=True)
        for rate in [float(x) for x in a.rates.split(",")]:
            for mode in a.modes.split(",") + (["criu"] if a.criu else []):
                rows = []
                for _ in range(a.reps):
                    floor += 10
                    if mode == "criu":
                        rows.append(criu_cold(hosts, a.mib, rate, floor, a.criu))
                    else:
                        rows.append(one(hosts, a.mib, rate, mode, floor))
                med = lambda k: median(rows, k)  # noqa: E731
                print("%-6g %-6s | %11.0f %10.0f %12.3f %7.0f %10.1f %13.0f %8.0f %9.2f %7.1f  %s" %
                      (rate, mode, med("downtime_ms"), med("total_ms"), med("sent"), med("rounds"),
                       med("final_mib"), med("pause_ms"), med("fill_ms"), med("tracked"), med("after"),
                       rows[-1]["why"]),
                      flush=True)


if __name__ == "__main__":
    main()
