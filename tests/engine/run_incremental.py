#!/usr/bin/env python3
"""Incremental dumps (docs/engine.md, "Incremental dumps"): an unmodified
python3 process keeps rewriting pages of a 32 MiB private mapping (each page
holds a pattern of its own number and its own write count) and makes,
unmaps and mremaps small mappings as it goes; it logs its iteration count
with a running checksum of which page it wrote, and on SIGUSR1 checks every
page against its bookkeeping.

While it runs: one --pre dump, then five --pre --parent generations, each of
which must store a small part of the memory and inherit the rest. The last
generation kills it; the restore from that image follows the chain, the
process finds every page as it should be and its log goes on with no gap or
repeat. Then the failures: a parent corrupted, missing, or replaced by
another image refuses the restore with a message that names it, and nothing
is left running; a ckpt killed during a --pre dump leaves the process running
normally, and the next --parent dump stores every page instead of trusting
tracking it cannot vouch for.

  run_incremental.py CKPT
"""
import faulthandler
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import ckpttest  # noqa: E402

CKPT = sys.argv[1]
faulthandler.dump_traceback_later(280, exit=True)  # a hang shows where
W = tempfile.mkdtemp(prefix="ckpt-incr.")
PAGES = 8192
EVERY = 200  # iterations per log line

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib", "dirty_pages.py")



def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def ckpt(*args, check=True, env=None):
    r = subprocess.run([CKPT] + list(args), capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, **(env or {})))
    if check and r.returncode != 0:
        fail("ckpt %s: exit %d\n%s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
    return r


def log_lines(log):
    try:
        with open(log) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def wait_log(log, pred, what, timeout=60):
    ckpttest.wait_for(lambda: any(pred(l) for l in log_lines(log)), what, timeout=timeout)


def verify(pid, log):
    before = sum(1 for l in log_lines(log) if l.startswith("VERIFY"))
    os.kill(pid, signal.SIGUSR1)
    ckpttest.wait_for(lambda: sum(1 for l in log_lines(log) if l.startswith("VERIFY")) > before,
                      "process %d to check its pages" % pid, timeout=60)
    last = [l for l in log_lines(log) if l.startswith("VERIFY")][-1]
    if last != "VERIFY ok":
        fail("process %d after restore: %s" % (pid, last))


def check_sequence(log, at_least):
    """Every count line follows the one before it with no gap or repeat, and
    its checksum is the one this script computes for the same writes (a
    child's log starts where it was forked)."""
    counts = [l.split() for l in log_lines(log) if l and l[0].isdigit()]
    x, i, s, k = 1, 0, 0, 0
    first = int(counts[0][0]) // EVERY if counts else 1
    for n, got in counts:
        while i < int(n):
            x = (x * 6364136223846793005 + 1442695040888963407) % 2 ** 64
            s = (s * 31 + (x >> 33) % PAGES + 1) % 2 ** 61
            i += 1
        if i != int(n) or int(n) != (first + k) * EVERY or int(got) != s:
            fail("%s line %d is '%s %s', expected '%d %d'" % (os.path.basename(log), k, n, got,
                                                              (first + k) * EVERY, s))
        k += 1
    if k < at_least:
        fail("only %d count lines in the log, expected at least %d" % (k, at_least))
    return k


def dump(pid, d, *opts, env=None):
    r = ckpt("dump", str(pid), "-D", d, "--json", *opts, env=env)
    return json.loads(r.stdout)


def start(tag):
    script = WORKER
    log = os.path.join(W, tag + ".log")
    p = subprocess.Popen([sys.executable, script, str(PAGES), log], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=W)
    wait_log(log, lambda l: l == "ready", "the worker to fill its memory")
    wait_log(log, lambda l: l.startswith("%d " % (3 * EVERY)), "the worker to run")
    return p, log


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def chain_and_restore():
    p, log = start("chain")
    g = [os.path.join(W, "g%d" % k) for k in range(7)]
    s0 = dump(p.pid, g[0], "--pre")
    if s0["trackers_armed"] != 1 or s0["pages_inherited"] != 0:
        fail("--pre dump: %s" % s0)
    total = s0["pages_stored"]
    for k in range(1, 6):
        time.sleep(0.3)
        s = dump(p.pid, g[k], "--pre", "--parent", g[k - 1])
        print("generation %d: %d pages stored, %d inherited, %d bytes (first: %d pages, %d bytes)" %
              (k, s["pages_stored"], s["pages_inherited"], s["image_bytes"], total, s0["image_bytes"]), flush=True)
        if s["notes"] or s["trackers_armed"] != 1:
            fail("generation %d: %s" % (k, s))
        if s["pages_inherited"] < total // 2 or s["pages_stored"] > total // 4:
            fail("generation %d stored %d pages and inherited %d of %d: tracking did not work" %
                 (k, s["pages_stored"], s["pages_inherited"], total))
    verify(p.pid, log)  # tracking left its memory as it was
    last = dump(p.pid, g[6], "--parent", g[5])
    if last["pages_inherited"] == 0:
        fail("the final dump inherited nothing: %s" % last)
    p.wait()
    before = check_sequence(log, 3)
    insp = ckpt("inspect", g[6]).stdout
    for k in range(6):
        if os.path.join(g[k], "process.ckpt") not in insp and "g%d/process.ckpt" % k not in insp:
            fail("ckpt inspect does not show generation %d of the chain:\n%s" % (k, insp))
    r = json.loads(ckpt("restore", "-D", g[6], "--detach", "--json").stdout)
    pid = r["pid"]
    try:
        verify(pid, log)
        n = before
        ckpttest.wait_for(lambda: sum(1 for l in log_lines(log) if l[:1].isdigit()) >= n + 3,
                          "the restored process to go on counting")
        verify(pid, log)
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    check_sequence(log, before + 3)
    print("chain of 7 restored: %d pages read from the last image, the rest from its parents" %
          last["pages_stored"], flush=True)
    return g, log


def left_running(marker_pid):
    try:
        with open("/proc/%d/cmdline" % marker_pid):
            return True
    except OSError:
        return False


def bad_chains(g, log):
    def refused(what, *expect):
        before = set(os.listdir("/proc"))
        r = ckpt("restore", "-D", g[6], "--detach", check=False)
        if r.returncode == 0:
            fail("restore with %s succeeded" % what)
        for e in expect:
            if e not in r.stderr:
                fail("restore with %s: message lacks '%s':\n%s" % (what, e, r.stderr))
        time.sleep(0.2)
        for d in set(os.listdir("/proc")) - before:
            if d.isdigit():
                try:
                    with open("/proc/%s/cmdline" % d, "rb") as f:
                        if W.encode() in f.read():  # a worker of this test (its log is in W)
                            fail("restore with %s left process %s running" % (what, d))
                except OSError:
                    pass
        print("refused, %s: %s" % (what, r.stderr.strip().splitlines()[-1]), flush=True)

    img = os.path.join(g[3], "process.ckpt")
    saved = os.path.join(W, "saved.ckpt")
    shutil.copyfile(img, saved)
    # A byte in the middle of generation 3's pages.
    size = os.path.getsize(img)
    with open(img, "r+b") as f:
        f.seek(size // 2)
        b = f.read(1)
        f.seek(size // 2)
        f.write(bytes([b[0] ^ 0x5A]))
    refused("a corrupted parent", "g3")
    shutil.copyfile(saved, img)
    os.rename(g[2], g[2] + ".away")
    refused("a missing parent", "g2", "missing")
    os.rename(g[2] + ".away", g[2])
    shutil.copyfile(os.path.join(g[0], "process.ckpt"), os.path.join(g[4], "process.ckpt"))
    refused("a replaced parent", "g4", "not the parent image")


def killed_pre():
    p, log = start("killed")
    a, b, c = (os.path.join(W, n) for n in ("k0", "k1", "k2"))
    dump(p.pid, a, "--pre")
    time.sleep(0.3)
    # The dump's worker dies while it copies pages, after it armed tracking.
    r = ckpt("dump", str(p.pid), "-D", b, "--pre", "--parent", a, check=False,
             env={"CKPT_ENGINE_FAULT": "kill-worker-at-pages"})
    if r.returncode == 0:
        fail("the dump whose worker was killed succeeded")
    if os.path.exists(os.path.join(b, "process.ckpt")):
        fail("the killed dump left an image")
    n = sum(1 for l in log_lines(log) if l[:1].isdigit())
    ckpttest.wait_for(lambda: sum(1 for l in log_lines(log) if l[:1].isdigit()) >= n + 5,
                      "the process to run on after the killed dump")
    verify(p.pid, log)
    s = dump(p.pid, c, "--parent", a)
    if s["pages_inherited"] != 0 or not any("every page stored" in x for x in s["notes"]):
        fail("a --parent dump after the killed one trusted its tracking: %s" % s)
    p.wait()
    before = check_sequence(log, 3)
    r = json.loads(ckpt("restore", "-D", c, "--detach", "--json").stdout)
    try:
        verify(r["pid"], log)
    finally:
        if alive(r["pid"]):
            os.kill(r["pid"], signal.SIGKILL)
    check_sequence(log, before)
    print("killed --pre dump: the process ran on; the next dump stored every page (%s)" % s["notes"][0],
          flush=True)


def forked_tree():
    """A process forks after its first --pre dump: --tree dumps track both
    from then on, and the restored tree has both memories exact."""
    p, log = start("tree")
    clog = log + ".child"
    t = [os.path.join(W, "t%d" % k) for k in range(4)]
    s = dump(p.pid, t[0], "--tree", "--pre")
    os.kill(p.pid, signal.SIGUSR2)
    wait_log(clog, lambda l: l[:1].isdigit(), "the forked child to run")
    child = int(log_lines(clog)[0].split()[1])
    time.sleep(0.3)
    s = dump(p.pid, t[1], "--tree", "--pre", "--parent", t[0])
    if s["members"] != 2 or s["trackers_armed"] != 2 or s["pages_inherited"] == 0 or \
            not any("not in the parent image" in n for n in s["notes"]):
        fail("--tree generation after the fork: %s" % s)
    time.sleep(0.3)
    s = dump(p.pid, t[2], "--tree", "--pre", "--parent", t[1])
    if s["trackers_armed"] != 2 or s["notes"] or s["pages_inherited"] < s["pages_stored"] * 4:
        fail("--tree generation with both tracked: %s" % s)
    s = dump(p.pid, t[3], "--tree", "--parent", t[2])
    p.wait()
    before, cbefore = check_sequence(log, 3), check_sequence(clog, 1)
    r = json.loads(ckpt("restore", "-D", t[3], "--detach", "--json").stdout)
    try:
        for pid, lg in ((r["pid"], log), (child, clog)):
            verify(pid, lg)
    finally:
        for pid in (child, r["pid"]):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    check_sequence(log, before)
    check_sequence(clog, cbefore)
    print("forked tree: 4 generations, both processes' memory exact after the restore", flush=True)


try:
    g, log = chain_and_restore()
    bad_chains(g, log)
    killed_pre()
    forked_tree()
finally:
    shutil.rmtree(W, ignore_errors=True)
print("PASS")
