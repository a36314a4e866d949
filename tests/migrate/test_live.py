#!/usr/bin/env python3
"""Live migration (`ckpt migrate --live`, docs/migration.md) between two
hosts made by tests/lib/hosts.py, over ssh, of an unmodified python3
process that checks its own memory (tests/lib/dirty_pages.py):

- 512 MiB populated, rewriting pages as it goes: pre-copy rounds while it
  runs, the first with all its memory, the later ones with what it wrote
  meanwhile, until they converge; then a final image of what changed. On the
  target it finds every page as its bookkeeping says and its log goes on
  with no gap or repeat.
- The same process moved back with the pre-copy cut short (the connection
  cut in the first round): it runs on at the source, its memory exact, and
  the target keeps nothing.
- A process that writes too fast to converge (no pause between writes):
  the pre-copy gives up and the final image carries what it must; the
  result is exact all the same.
- A System V producer/consumer tree (tests/engine/zdtm_sysv_pc, --tree):
  a -> b and back live, then it checks its own sequence, segment and
  semaphores.

Skipped (77) where hosts cannot be made.
"""
import json
import os
import shutil
import signal
import sys

LIB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib")
sys.path.insert(0, LIB)
import ckpttest as ck  # noqa: E402
import hosts as H  # noqa: E402

CKPT = os.path.join(ck.BIN, "ckpt")
WORKER = os.path.join(LIB, "dirty_pages.py")
RT = "/run/ckpt"
ENV = {"CKPT_RUNTIME_DIR": RT}
EVERY = 200


def wait_for(pred, what, timeout=60.0):
    return ck.wait_for(pred, what, timeout)


def migrate(hosts, src, pid, dest, *extra, expect=0):
    argv = [CKPT, "migrate", str(pid), "--to", hosts[dest].url, "--ssh", hosts.ssh_command, "--json",
            "--remote-spool", hosts.spool, "--live"]
    argv += ([] if "--remote-ckpt" in extra else ["--remote-ckpt", CKPT]) + list(extra)
    p = hosts[src].run(argv, capture_output=True, text=True, timeout=240, env=ck.env(**ENV))
    if p.returncode != expect:
        ck.fail("%s exited %d (wanted %d)\nstdout:\n%s\nstderr:\n%s" % (" ".join(argv), p.returncode, expect,
                                                                      p.stdout, p.stderr))
    return p, (json.loads(p.stdout) if p.returncode == 0 else None)


def lines(log):
    try:
        with open(log) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def counts(log):
    return sum(1 for l in lines(log) if l[:1].isdigit())


def check_sequence(log, pages):
    """No gap or repeat, and every checksum the one of the same writes."""
    x, i, s, k = 1, 0, 0, 0
    for n, got in (l.split() for l in lines(log) if l[:1].isdigit()):
        while i < int(n):
            x = (x * 6364136223846793005 + 1442695040888963407) % 2 ** 64
            s = (s * 31 + (x >> 33) % pages + 1) % 2 ** 61
            i += 1
        ck.check(int(n) == (k + 1) * EVERY and int(got) == s,
                 "%s line %d is '%s %s', expected '%d %d'" % (log, k, n, got, (k + 1) * EVERY, s))
        k += 1
    return k


def verify(host, pid, log):
    before = sum(1 for l in lines(log) if l.startswith("VERIFY"))
    host.run(["kill", "-USR1", str(pid)], check=True)
    wait_for(lambda: sum(1 for l in lines(log) if l.startswith("VERIFY")) > before,
             "process %d to check its pages" % pid, 120)
    last = [l for l in lines(log) if l.startswith("VERIFY")][-1]
    ck.check(last == "VERIFY ok", "process %d on %s: %s" % (pid, host.name, last))


def alive(host, pid):
    return host.run(["kill", "-0", str(pid)], capture_output=True).returncode == 0


def start(host, work, pages, floor, *mode):
    log = os.path.join(work, "pages.log")
    host.run(["sh", "-c", "echo %d > /proc/sys/kernel/ns_last_pid" % floor], check=True)
    p = host.popen(["python3", WORKER, str(pages), log] + list(mode), stdin=open(os.devnull),
                   stdout=open(os.devnull, "w"), stderr=open(os.devnull, "w"), start_new_session=True)
    wait_for(lambda: "ready" in lines(log), "the worker to fill its memory")
    wait_for(lambda: counts(log) >= 3, "the worker to run")
    return p.ns_pid, log


def after_move(hosts, where, pid, log, pages):
    """The process runs on `where` only, its memory exact, its log going on."""
    other = "b" if where == "a" else "a"
    # The source's copy got its SIGKILL at the end; ckpt does not wait for
    # the kernel to tear it down (docs/cli.md, ckpt dump).
    wait_for(lambda: not alive(hosts[other], pid), "the source's copy on %s to end" % other, 10)
    ck.check(alive(hosts[where], pid), "the process is not on %s" % where)
    n = counts(log)
    verify(hosts[where], pid, log)
    wait_for(lambda: counts(log) >= n + 3, "the process to go on counting on " + where)
    check_sequence(log, pages)
    ck.check(not ck.spool_entries(hosts[where].path(hosts.spool)), "spool of %s not empty" % where)


def check_converging(hosts):
    work = ck.tempdir("live")
    pages = 131072  # 512 MiB
    pid, log = start(hosts["a"], work, pages, 27000)
    p, j = migrate(hosts, "a", pid, "b")
    live = j["live"]
    rounds = live["rounds"]
    print("a -> b: %d rounds (%s): %s MiB, %s pages; final %.1f MiB; downtime %.0f ms, total %.0f ms" %
          (len(rounds), live["convergence"], [round(r["bytes"] / 2 ** 20, 1) for r in rounds],
           [r["pages"] for r in rounds],
           j["image_bytes"] / 2 ** 20, j["downtime_ms"], j["total_ms"]), flush=True)
    ck.check(j["pid"] == pid and j["host"] == "b", "migrate said %s" % p.stdout)
    ck.check(len(rounds) >= 2 and rounds[0]["pages"] >= pages, "rounds: %s" % rounds)
    ck.check(live["convergence"] == "converged", "a slow writer did not converge: %s" % live)
    ck.check(rounds[-1]["pages"] * 10 < rounds[0]["pages"], "the rounds did not shrink: %s" % rounds)
    ck.check(j["image_bytes"] * 10 < rounds[0]["bytes"], "the final image is not small: %s" % j["image_bytes"])
    after_move(hosts, "b", pid, log, pages)
    # Back, with the connection cut during the first round: the process
    # runs on at b as it was (tracking armed does not disturb it).
    cut = os.path.join(work, "cut-receive")
    with open(cut, "w") as f:
        f.write("#!/bin/sh\ndd bs=64K iflag=count_bytes count=50000000 status=none | %s \"$@\"\n" % CKPT)
    os.chmod(cut, 0o755)
    p, _ = migrate(hosts, "b", pid, "a", "--remote-ckpt", cut, expect=1)
    ck.check("runs on here as before" in p.stderr, "cut pre-copy: %s" % p.stderr)
    after_move(hosts, "b", pid, log, pages)
    hosts["b"].run(["kill", "-9", str(pid)], capture_output=True)
    shutil.rmtree(work)


def check_not_converging(hosts):
    work = ck.tempdir("live-busy")
    pages = 8192  # 32 MiB, rewritten many times a second
    pid, log = start(hosts["a"], work, pages, 28000, "busy")
    p, j = migrate(hosts, "a", pid, "b", "--max-rounds", "4")
    live = j["live"]
    print("busy a -> b: %d rounds (%s), final %.1f MiB, downtime %.0f ms" %
          (len(live["rounds"]), live["convergence"], j["image_bytes"] / 2 ** 20, j["downtime_ms"]), flush=True)
    ck.check(live["convergence"] != "converged", "a busy writer converged: %s" % live)
    after_move(hosts, "b", pid, log, pages)
    hosts["b"].run(["kill", "-9", str(pid)], capture_output=True)
    shutil.rmtree(work)


def check_sysv_tree(hosts):
    d = ck.tempdir("live-sysv")
    ck.check(hosts["a"].run(["sh", "-c", "echo 29000 > /proc/sys/kernel/ns_last_pid"]).returncode == 0, "pid")
    tree = hosts["a"].popen([os.path.join(ck.BIN, "zdtm_sysv_pc"), d], stdin=open(os.devnull),
                            stdout=open(os.devnull, "w"), stderr=open(os.devnull, "w"), start_new_session=True)
    wait_for(lambda: os.path.exists(os.path.join(d, "ready")), "the SysV tree to be ready")
    pid, where = tree.ns_pid, "a"
    for _ in range(2):
        dest = "b" if where == "a" else "a"
        p, j = migrate(hosts, where, pid, dest, "--tree")
        ck.check(j["pid"] == pid and j["host"] == dest and len(j["live"]["rounds"]) >= 2,
                 "sysv tree live to %s: %s" % (dest, p.stdout))
        ck.check(not alive(hosts[where], pid), "the tree still runs on " + where)
        where = dest
    open(os.path.join(d, "stop"), "w").close()
    verdict = wait_for(lambda: os.path.exists(os.path.join(d, "result")) and open(os.path.join(d, "result")).read(),
                       "the tree's verdict")
    ck.check(verdict == "PASS\n", "the SysV tree after two live migrations: %s" % verdict)
    print("SysV tree: a -> b -> a live, its own check passed", flush=True)
    shutil.rmtree(d)


def main():
    H.skip_unless_available()
    ssh_env = {"CKPT_RUNTIME_DIR": RT, "PATH": ck.BIN + ":/usr/sbin:/usr/bin:/sbin:/bin"}
    with H.Hosts(("a", "b"), spool_size={"a": "1200M", "b": "1200M"}, ssh_env=ssh_env) as hosts:
        check_converging(hosts)
        check_not_converging(hosts)
        check_sysv_tree(hosts)
    print("ok")


if __name__ == "__main__":
    main()
