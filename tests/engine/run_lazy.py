#!/usr/bin/env python3
"""Lazy restore (docs/engine.md, "Lazy restore"): `ckpt restore --lazy` of an
incremental chain lets the process run before the pages it takes from the
parent images are in; they are filled on first touch and in the background.

The process is tests/lib/dirty_pages.py with 256 MiB: it keeps rewriting
pages in a pseudo-random order (so it touches missing pages while they are
filled), makes, unmaps and mremaps small mappings, and logs a running
checksum of what it wrote. It is dumped with --pre, once more with --pre
--parent, and a last time with --parent (killed). Then:
  - restored lazily, it is asked to fork at once (SIGUSR2): parent and
    child, each in its own address space, later check every page (SIGUSR1)
    and the parent's count goes on with no gap; the fork happened while
    pages were still missing (ckpt says how many forks it followed);
  - ckpt killed while it fills: the restored process is killed with it,
    never left running with missing memory;
  - a damaged page frame in the first image: the restore fails naming the
    damage, and the process it had let run is gone.

  run_lazy.py CKPT
"""
import faulthandler
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import ckpttest  # noqa: E402

CKPT = sys.argv[1]
faulthandler.dump_traceback_later(280, exit=True)  # a hang shows where
W = tempfile.mkdtemp(prefix="ckpt-lazy.")
PAGES = 65536
EVERY = 200
WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib", "dirty_pages.py")
LOG = os.path.join(W, "lazy.log")


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def ckpt(*args, check=True):
    r = subprocess.run([CKPT] + list(args), capture_output=True, text=True, timeout=120)
    if check and r.returncode != 0:
        fail("ckpt %s: exit %d\n%s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
    return r


def lines(path):
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def verify(pid, log):
    before = sum(1 for l in lines(log) if l.startswith("VERIFY"))
    os.kill(pid, signal.SIGUSR1)
    ckpttest.wait_for(lambda: sum(1 for l in lines(log) if l.startswith("VERIFY")) > before,
                      "process %d to check its pages" % pid, timeout=120)
    last = [l for l in lines(log) if l.startswith("VERIFY")][-1]
    if last != "VERIFY ok":
        fail("process %d after a lazy restore: %s" % (pid, last))


def check_sequence(log):
    """Each count line follows the one before with no gap or repeat, and its
    checksum is the one computed here for the same writes."""
    counts = [l.split() for l in lines(log) if l and l[0].isdigit()]
    x, i, s, k = 1, 0, 0, 0
    for n, got in counts:
        while i < int(n):
            x = (x * 6364136223846793005 + 1442695040888963407) % 2 ** 64
            s = (s * 31 + (x >> 33) % PAGES + 1) % 2 ** 61
            i += 1
        if int(n) != (k + 1) * EVERY or int(got) != s:
            fail("log line %d is '%s %s', expected '%d %d'" % (k, n, got, (k + 1) * EVERY, s))
        k += 1
    return k


def lazy_restore(image):
    """Starts `ckpt restore --lazy --detach`; returns it and the PID it
    prints once the process runs (before its pages are all in)."""
    p = subprocess.Popen([CKPT, "restore", "-D", image, "--lazy", "--detach"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    first = p.stdout.readline().strip()
    if not first.isdigit():
        p.wait()
        fail("ckpt restore --lazy printed %r; stderr:\n%s" % (first, p.stderr.read()))
    return p, int(first)


def gone(pid, what):
    ckpttest.wait_for(lambda: not alive(pid), what, timeout=30)


def my_processes():
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    if W.encode() in f.read() and alive(int(d)):
                        out.append(int(d))
            except OSError:
                pass
    return out


def main():
    w = subprocess.Popen([sys.executable, WORKER, str(PAGES), LOG], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=W)
    ckpttest.wait_for(lambda: any(l.startswith("%d " % (3 * EVERY)) for l in lines(LOG)), "the worker to run",
                      timeout=120)
    g = [os.path.join(W, "g%d" % k) for k in range(3)]
    ckpt("dump", str(w.pid), "-D", g[0], "--pre")
    time.sleep(0.5)
    ckpt("dump", str(w.pid), "-D", g[1], "--pre", "--parent", g[0])
    time.sleep(0.5)
    ckpt("dump", str(w.pid), "-D", g[2], "--parent", g[1])
    w.wait()
    counted = check_sequence(LOG)

    # 1. Lazy restore; a fork while pages are missing; both check every page.
    p, pid = lazy_restore(g[2])
    os.kill(pid, signal.SIGUSR2)
    err = p.communicate(timeout=120)[1]
    if p.returncode != 0:
        fail("ckpt restore --lazy: exit %d\n%s" % (p.returncode, err))
    m = re.search(r"(\d+) pages filled after it ran, in ([\d.]+) ms \((\d+) first touches waited, (\d+) "
                  r"processes forked meanwhile\)", err)
    if not m:
        fail("ckpt restore --lazy did not report its fill:\n" + err)
    filled, fill_ms, faults, forks = int(m.group(1)), float(m.group(2)), int(m.group(3)), int(m.group(4))
    print("lazy restore: %d pages filled in %.0f ms after the process ran, %d first touches waited, "
          "%d forks followed" % (filled, fill_ms, faults, forks), flush=True)
    if filled < PAGES // 2:
        fail("only %d pages were filled lazily (expected most of %d)" % (filled, PAGES))
    if forks < 1:
        fail("the process forked after the restore began, yet ckpt followed no fork")
    try:
        ckpttest.wait_for(lambda: any(l.startswith("child ") for l in lines(LOG + ".child")), "the child",
                          timeout=60)
        child = int([l for l in lines(LOG + ".child") if l.startswith("child ")][0].split()[1])
        verify(pid, LOG)
        verify(child, LOG + ".child")
        ckpttest.wait_for(lambda: check_sequence(LOG) >= counted + 3, "the count to go on", timeout=60)
        verify(pid, LOG)
    finally:
        for x in my_processes():
            os.kill(x, signal.SIGKILL)
    n = check_sequence(LOG)
    print("parent and child found every page; the count went on from %d to %d lines" % (counted, n), flush=True)
    gone(pid, "the restored process to end")

    # 2. ckpt killed while it fills: the process goes with it.
    p, pid = lazy_restore(g[2])
    p.kill()
    p.wait()
    gone(pid, "the process whose filler was killed to be killed too")
    ckpttest.wait_for(lambda: not my_processes(), "nothing of the restore left after ckpt died mid-fill",
                      timeout=10)
    print("ckpt killed mid-fill: the restored process was killed with it", flush=True)

    # 3. A damaged page frame in the first image: found when filled.
    img = os.path.join(g[0], "process.ckpt")
    size = os.path.getsize(img)
    with open(img, "r+b") as f:
        f.seek(size * 3 // 4)
        b = f.read(1)
        f.seek(size * 3 // 4)
        f.write(bytes([b[0] ^ 0xFF]))
    r = ckpt("restore", "-D", g[2], "--lazy", "--detach", check=False)
    if r.returncode == 0:
        fail("a lazy restore from a damaged parent succeeded:\n" + r.stdout)
    if "checksum mismatch" not in r.stderr:
        fail("the failed lazy restore does not name the damage:\n" + r.stderr)
    pid = int(r.stdout.split()[0]) if r.stdout.strip() else 0
    if pid:
        gone(pid, "the process of a failed lazy restore to be killed")
    time.sleep(0.2)
    if my_processes():
        fail("a failed lazy restore left processes running: %s" % my_processes())
    print("damaged parent: %s" % r.stderr.strip().splitlines()[-1], flush=True)
    print("PASS", flush=True)


if __name__ == "__main__":
    try:
        main()
    finally:
        for x in my_processes():
            try:
                os.kill(x, signal.SIGKILL)
            except OSError:
                pass
        subprocess.run(["rm", "-rf", W])
