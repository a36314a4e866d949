#!/usr/bin/env python3
"""Post-copy migration (`ckpt migrate --lazy`, docs/migration.md) between
two hosts made by tests/lib/hosts.py, over ssh, of an unmodified python3
process that checks its own memory (tests/lib/dirty_pages.py):

- a -> b with --lazy: the image sent holds none of the process's private
  memory (a small fraction of it); the process runs on b at once and its
  pages follow from a's frozen copy, those it touches first. On b it finds
  every page as its bookkeeping says and its log goes on with no gap or
  repeat.
- b -> a with --live --lazy: pre-copy rounds, then post-copy for what the
  last one did not cover; exact again.
- a -> b with the link cut after two frames of pages (the receiving
  side's input ends): b's copy ran without its memory and is killed, the
  source's copy runs on at a with its memory exact and its log unbroken,
  and b keeps nothing.
- a -> b with b's receiver killed once it let its copy go, before DONE:
  that copy never gets the link and is killed, the source learns "not
  committed" and runs on, exact.
- A System V producer/consumer tree (tests/engine/zdtm_sysv_pc) a -> b
  and back with --tree --lazy, then it checks its own sequence, segment
  and semaphores.

Skipped (77) where hosts cannot be made.
"""
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)
import ckpttest as ck  # noqa: E402
import hosts as H  # noqa: E402
import test_live as L  # noqa: E402


def migrate(hosts, src, pid, dest, *extra, expect=0):
    argv = [L.CKPT, "migrate", str(pid), "--to", hosts[dest].url, "--ssh", hosts.ssh_command, "--json",
            "--remote-spool", hosts.spool, "--lazy"]
    argv += ([] if "--remote-ckpt" in extra else ["--remote-ckpt", L.CKPT]) + list(extra)
    p = hosts[src].run(argv, capture_output=True, text=True, timeout=240, env=ck.env(**L.ENV))
    if p.returncode != expect:
        ck.fail("%s exited %d (wanted %d)\nstdout:\n%s\nstderr:\n%s" % (" ".join(argv), p.returncode, expect,
                                                                      p.stdout, p.stderr))
    return p, (L.json.loads(p.stdout) if p.returncode == 0 else None)


def report(what, j):
    pc = j["postcopy"]
    print("%s: image %.1f MiB; downtime %.0f ms, total %.0f ms; post-copy %.1f MiB in %.0f ms, %d frames "
          "asked for, %d faults waited" %
          (what, j["image_bytes"] / 2 ** 20, j["downtime_ms"], j["total_ms"], pc["bytes"] / 2 ** 20, pc["ms"],
           pc["requests"], pc.get("faults", 0)), flush=True)


def main():
    H.skip_unless_available()
    ssh_env = {"CKPT_RUNTIME_DIR": L.RT, "PATH": ck.BIN + ":/usr/sbin:/usr/bin:/sbin:/bin"}
    with H.Hosts(("a", "b"), spool_size={"a": "600M", "b": "600M"}, ssh_env=ssh_env) as hosts:
        work = ck.tempdir("postcopy")
        pages = 65536  # 256 MiB
        memory = pages * 4096
        pid, log = L.start(hosts["a"], work, pages, 27500)

        # Pure post-copy: the memory is not in the image but follows it.
        p, j = migrate(hosts, "a", pid, "b")
        report("a -> b --lazy", j)
        ck.check(j["pid"] == pid and j["host"] == "b", "migrate said %s" % p.stdout)
        ck.check(j["image_bytes"] * 10 < memory, "the image holds the memory: %d bytes" % j["image_bytes"])
        ck.check(j["postcopy"]["bytes"] >= memory, "post-copy sent %s" % j["postcopy"])
        # It ran on b before its memory was there: touches waited for pages.
        ck.check(j["postcopy"]["faults"] > 0, "no touch waited for a page: %s" % j["postcopy"])
        L.after_move(hosts, "b", pid, log, pages)

        # Hybrid: pre-copy rounds, then post-copy for the rest.
        p, j = migrate(hosts, "b", pid, "a", "--live")
        report("b -> a --live --lazy (%d rounds, %s)" % (len(j["live"]["rounds"]), j["live"]["convergence"]), j)
        ck.check(j["pid"] == pid and j["host"] == "a" and len(j["live"]["rounds"]) >= 1,
                 "migrate said %s" % p.stdout)
        ck.check(j["postcopy"]["bytes"] < memory, "post-copy after pre-copy sent it all again: %s" % j["postcopy"])
        L.after_move(hosts, "a", pid, log, pages)

        # The link cut once the image is through: b's copy cannot get its
        # memory and is killed; a's runs on.
        cut = os.path.join(work, "cut-receive")
        with open(cut, "w") as f:
            f.write("#!/bin/sh\nexec python3 %s 2 %s \"$@\"\n" % (os.path.join(HERE, "cut_after_pages.py"), L.CKPT))
        os.chmod(cut, 0o755)
        p, _ = migrate(hosts, "a", pid, "b", "--remote-ckpt", cut, expect=1)
        print("cut post-copy: %s" % p.stderr.strip().splitlines()[-1], flush=True)
        ck.check("post-copy" in p.stderr and "runs on here" in p.stderr, "cut post-copy: %s" % p.stderr)
        L.wait_for(lambda: not L.alive(hosts["b"], pid), "b's copy to be killed", 30)
        L.after_move(hosts, "a", pid, log, pages)
        ck.check(not ck.spool_entries(hosts["b"].path(hosts.spool)), "b keeps a spool entry")

        # b's receiver dies once it let its copy go, before DONE: that copy
        # never gets the link (killed, no outcome recorded), the source asks
        # b, learns "not committed" and runs on.
        die = os.path.join(work, "receive-die")
        with open(die, "w") as f:
            f.write("#!/bin/sh\nCKPT_RECEIVE_FAULT=die-after-release exec %s \"$@\"\n" % L.CKPT)
        os.chmod(die, 0o755)
        p, _ = migrate(hosts, "a", pid, "b", "--remote-ckpt", die, expect=1)
        print("receiver dead before DONE: %s" % p.stderr.strip().splitlines()[-1], flush=True)
        ck.check("runs on here" in p.stderr, "receiver dead before DONE: %s" % p.stderr)
        L.wait_for(lambda: not L.alive(hosts["b"], pid), "b's copy to be killed", 30)
        L.after_move(hosts, "a", pid, log, pages)
        L.wait_for(lambda: not ck.spool_entries(hosts["b"].path(hosts.spool)), "b's spool to be swept", 30)
        hosts["a"].run(["kill", "-9", str(pid)], capture_output=True)
        shutil.rmtree(work)
        check_sysv_tree(hosts)
    print("ok")


def check_sysv_tree(hosts):
    """A tree sharing a System V segment and semaphores, a -> b and back
    with --tree --lazy: the segment's pages go in the image (shared memory
    is never post-copied), the members' own memory follows."""
    d = ck.tempdir("postcopy-sysv")
    ck.check(hosts["a"].run(["sh", "-c", "echo 29500 > /proc/sys/kernel/ns_last_pid"]).returncode == 0, "pid")
    tree = hosts["a"].popen([os.path.join(ck.BIN, "zdtm_sysv_pc"), d], stdin=open(os.devnull),
                            stdout=open(os.devnull, "w"), stderr=open(os.devnull, "w"), start_new_session=True)
    L.wait_for(lambda: os.path.exists(os.path.join(d, "ready")), "the SysV tree to be ready")
    pid, where = tree.ns_pid, "a"
    for _ in range(2):
        dest = "b" if where == "a" else "a"
        p, j = migrate(hosts, where, pid, dest, "--tree")
        ck.check(j["pid"] == pid and j["host"] == dest and j["postcopy"]["pages"] > 0,
                 "sysv tree --lazy to %s: %s" % (dest, p.stdout))
        ck.check(not L.alive(hosts[where], pid), "the tree still runs on " + where)
        where = dest
    open(os.path.join(d, "stop"), "w").close()
    verdict = L.wait_for(lambda: os.path.exists(os.path.join(d, "result")) and
                         open(os.path.join(d, "result")).read(), "the tree's verdict")
    ck.check(verdict == "PASS\n", "the SysV tree after two post-copy migrations: %s" % verdict)
    print("SysV tree: a -> b -> a --tree --lazy, its own check passed", flush=True)
    shutil.rmtree(d)


if __name__ == "__main__":
    main()
