#!/usr/bin/env python3
"""Migration between hosts over ssh (docs/migration.md), on hosts made by
tests/lib/hosts.py (namespaces with their own sshd, network, PIDs, /run, IPC).

  test_migrate.py program   a ckpt program (examples/heat) a -> b -> a mid-run,
                            result equal to an uninterrupted run; then the
                            faults, each leaving the source running and its
                            result intact
  test_migrate.py process   an unmodified python3 counter (transparent engine)
                            a -> b and back three times, no gap or repeat; a
                            taken PID on the target; a SysV producer/consumer tree

Skipped (77) where hosts cannot be made.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

LIB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib")
sys.path.insert(0, LIB)
import ckpttest as ck  # noqa: E402
import hosts as H  # noqa: E402

CKPT = os.path.join(ck.BIN, "ckpt")
HEAT = os.path.join(ck.BIN, "heat")
RT = "/run/ckpt"  # each host's own runtime directory (a private tmpfs /run)
ENV = {"CKPT_RUNTIME_DIR": RT}


def env():
    return ck.env(**ENV)


def wait_for(pred, what, timeout=30.0):
    return ck.wait_for(pred, what, timeout)


def migrate_argv(hosts, pid, dest, *extra):
    argv = [CKPT, "migrate", str(pid), "--to", hosts[dest].url, "--ssh", hosts.ssh_command, "--json",
            "--remote-spool", hosts.spool]
    return argv + ([] if "--remote-ckpt" in extra else ["--remote-ckpt", CKPT]) + list(extra)


def migrate(hosts, src, pid, dest, *extra, expect=0):
    """`ckpt migrate PID --to ssh://DEST` run on host src; returns (process, json or None)."""
    argv = migrate_argv(hosts, pid, dest, *extra)
    p = hosts[src].run(argv, capture_output=True, text=True, timeout=180, env=env())
    if p.returncode != expect:
        ck.fail("%s exited %d (wanted %d)\nstdout:\n%s\nstderr:\n%s" % (" ".join(argv), p.returncode, expect,
                                                                      p.stdout, p.stderr))
    return p, (json.loads(p.stdout) if p.returncode == 0 else None)


def registered(host, ns_pid):
    return os.path.exists(host.path("%s/%d.json" % (RT, ns_pid)))


def alive(host, ns_pid):
    return host.run(["kill", "-0", str(ns_pid)], capture_output=True).returncode == 0


# --- a ckpt program -----------------------------------------------------------

HEAT_ARGS = ["512", "40000"]  # steps calibrated by reference()


def calibrated_steps(n, seconds):
    """Steps of `heat n` that take about `seconds` with this build (sanitizer builds are much slower).
    Two runs, so that the program's start-up (a large part of a short run) does not count as steps."""
    def run(steps):
        t0 = time.monotonic()
        ck.run([HEAT, str(n), str(steps), "--ckpt-no-listen"], check=0)
        return time.monotonic() - t0
    short, long_ = run(300), run(2300)
    per_step = max((long_ - short) / 2000, 1e-6)
    return str(max(2000, min(200000, int(seconds / per_step))))


def reference():
    """The uninterrupted run's result, once HEAT_ARGS runs about 4 s here."""
    HEAT_ARGS[1] = calibrated_steps(512, 4.0)
    p = ck.run([HEAT] + HEAT_ARGS + ["--ckpt-no-listen"], check=0)
    return ck.result_line(p.stdout)


def start_heat(host, work, args=None):
    args = args or HEAT_ARGS
    out = open(os.path.join(work, "source.out"), "ab")
    err = open(os.path.join(work, "source.err"), "ab")
    proc = host.popen([HEAT] + args + ["--ckpt-dir", work], cwd=work, stdout=out, stderr=err,
                      stdin=open(os.devnull), env=env())
    out.close()
    err.close()
    wait_for(lambda: registered(host, proc.ns_pid), "heat to register on " + host.name)
    time.sleep(0.3)
    return proc


def result_on(work):
    """The result line the migrated heat wrote into WORK/heat.out, once it ends."""
    path = os.path.join(work, "heat.out")
    return wait_for(lambda: os.path.exists(path) and [l for l in open(path).read().splitlines()
                                                      if l.startswith("result ")], "heat's result", 120)


def check_program_round_trip(hosts, ref):
    work = ck.tempdir("mig-prog")
    a = hosts["a"]
    # Three times the calibrated run, so that two hops and their checks fit
    # in it on a loaded machine; its uninterrupted result is computed
    # meanwhile, beside it.
    args = [HEAT_ARGS[0], str(3 * int(HEAT_ARGS[1]))]
    ref_run = subprocess.Popen([HEAT] + args + ["--ckpt-no-listen"], stdout=subprocess.PIPE, text=True,
                               env=env())
    src = start_heat(a, work, args)
    images = lambda: sorted(f for f in os.listdir(work) if f.endswith(".ckpt"))
    before = images()
    kept = os.path.join(work, "kept")
    p, j = migrate(hosts, "a", src.ns_pid, "b", "--keep-image", kept)
    ck.check(j["host"] == "b" and j["kind"] == "program" and j["pid"] > 0, "migrate said: %s" % p.stdout)
    ck.check(j.get("restored_as_it_arrived") is True, "not resumed as the image arrived: %s" % p.stdout)
    # The image went straight into the connection: no file on the source but the one asked for.
    ck.check(images() == before, "the source wrote an image file: %s -> %s" % (before, images()))
    ck.check("checkpoint streamed into the migration's connection" in
             open(os.path.join(work, "source.err")).read(), "the source did not stream its image")
    ck.check(j.get("kept_image") == os.path.join(kept, "heat.ckpt"), "kept_image: %s" % p.stdout)
    ck.run([CKPT, "verify", j["kept_image"]], check=0)
    ck.check(j["stdout"] == os.path.join(work, "heat.out"), "output went to %s" % j["stdout"])
    ck.check(j["bytes_sent"] > 2 * 1024 * 1024 and j["downtime_ms"] > 0, "figures: %s" % p.stdout)
    ck.check(src.wait(timeout=30) == 75, "the source heat did not exit 75 after the handoff")
    b = hosts["b"]
    ck.check(alive(b, j["pid"]), "the migrated heat does not run on b")
    # It loaded its variables as the image arrived (CKPT_RESUME_FOLLOW), not from a finished file.
    ck.check("as it arrived" in open(os.path.join(work, "heat.err")).read(),
             "the target did not resume as the image arrived:\n" + open(os.path.join(work, "heat.err")).read())
    # ... and back to a while it runs.
    wait_for(lambda: registered(b, j["pid"]), "the migrated heat to register on b")
    time.sleep(0.3)
    p, j2 = migrate(hosts, "b", j["pid"], "a", "--compress", "zstd")
    ck.check(j2["host"] == "a", "second hop said: %s" % p.stdout)
    ck.check(j2["bytes_sent"] < j2["image_bytes"], "--compress zstd sent %d of %d bytes" %
             (j2["bytes_sent"], j2["image_bytes"]))
    wait_for(lambda: not alive(b, j["pid"]), "heat to leave b")
    got = result_on(work)
    ref = ck.result_line(ref_run.communicate(timeout=300)[0])
    ck.check(got == [ref], "a -> b -> a result %s, uninterrupted %s" % (got, ref))
    # Nothing left in either spool.
    for h in ("a", "b"):
        ck.check(not ck.spool_entries(hosts[h].path(hosts.spool)), "spool of %s not empty" % h)
    shutil.rmtree(work)


def check_source_survives(hosts, ref, what, dest, extra, want_in_error, env_extra=None, args=None,
                          source_ref=None):
    """A migration that must fail: the source runs on and its result is intact."""
    work = ck.tempdir("mig-fault")
    a = hosts["a"]
    src = start_heat(a, work, args)
    global ENV
    saved = dict(ENV)
    ENV.update(env_extra or {})
    try:
        p, _ = migrate(hosts, "a", src.ns_pid, dest, *extra, expect=1)
    finally:
        ENV = saved
    ck.check(want_in_error in p.stderr, "%s: error does not say %r:\n%s" % (what, want_in_error, p.stderr))
    ck.check("runs on here as before" in p.stderr, "%s: no word that the source runs on:\n%s" % (what, p.stderr))
    # Still running, or (a loaded machine: the failed attempt outlasted the
    # calibrated run) already finished by itself — its status and result
    # are checked next.
    ck.check(alive(a, src.ns_pid) or src.poll() == 0, "%s: the source is gone (%s):\n%s\n%s" % (
        what, src.poll(), p.stderr, open(os.path.join(work, "source.err")).read()[-3000:]))
    rc = src.wait(timeout=120)
    out = open(os.path.join(work, "source.out")).read()
    ck.check(rc == 0, "%s: the source ended with %d" % (what, rc))
    ck.check(ck.result_line(out) == (source_ref or ref), "%s: source result %s, want %s" % (what, out, ref))
    d = hosts[dest]
    ck.check(not ck.spool_entries(d.path(hosts.spool)), "%s: spool on %s not empty: %s" %
             (what, dest, ck.spool_entries(d.path(hosts.spool))))
    # Nothing half-running there: a copy started while the image arrived was ended with the migration.
    wait_for(lambda: not copies_on(d, work), "%s: the copy on %s to end (%s)" % (what, dest, copies_on(d, work)), 15)
    ck.check(not os.path.exists(os.path.join(work, "heat.out")) or
             not ck.result_line_or_none(open(os.path.join(work, "heat.out")).read()),
             "%s: a copy ran on %s" % (what, dest))
    left = d.run(["pgrep", "-x", "heat"], capture_output=True, text=True).stdout.split()
    ck.check(not left, "%s: heat left running on %s: %s" % (what, dest, left))
    shutil.rmtree(work)


def fault_wrapper(d, point):
    """A --remote-ckpt that runs ckpt receive with CKPT_RECEIVE_FAULT=POINT."""
    path = os.path.join(d, "receive-" + point)
    with open(path, "w") as f:
        f.write("#!/bin/sh\nCKPT_RECEIVE_FAULT=%s exec %s \"$@\"\n" % (point, CKPT))
    os.chmod(path, 0o755)
    return path


def check_program_done_lost(hosts, ref):
    """The target lets the program run, records it, and dies before DONE: the source asks again over a new
    connection, learns it was committed, and ends its copy. Exactly one copy runs, to the right result."""
    work = ck.tempdir("mig-done-lost")
    src = start_heat(hosts["a"], work)
    p, j = migrate(hosts, "a", src.ns_pid, "b", "--remote-ckpt", fault_wrapper(work, "die-after-release"))
    ck.check("confirmation was lost" in p.stderr and j["host"] == "b", "DONE lost: %s %s" % (p.stdout, p.stderr))
    ck.check(src.wait(timeout=30) == 75, "DONE lost: the source did not exit 75")
    got = result_on(work)
    ck.check(got == [ref], "DONE lost: result %s, want %s" % (got, ref))
    shutil.rmtree(work)


def check_program_old_libckpt(hosts, ref):
    """A program on the target whose libckpt predates streamed resume ends when the image it was started on
    is not whole yet; the receiver starts it again once the image is whole, and the migration succeeds.
    The stand-in fails whenever it is started on an arriving image (CKPT_RESUME_FOLLOW), as an old libckpt
    would whenever it is faster than the transfer, and runs heat on the whole image."""
    work = ck.tempdir("mig-oldlib")
    starts = os.path.join(work, "starts")
    old = os.path.join(work, "old-heat")
    with open(old, "w") as f:
        f.write('#!/bin/sh\nif [ -n "$CKPT_RESUME_FOLLOW" ]; then echo follow >> %s\n'
                '  echo "cannot resume from $CKPT_RESUME: truncated image" >&2; exit 1; fi\n'
                'echo whole >> %s\nexec %s "$@"\n' % (starts, starts, HEAT))
    os.chmod(old, 0o755)
    src = start_heat(hosts["a"], work)
    p, j = migrate(hosts, "a", src.ns_pid, "b", "--program", "heat=" + old)
    ck.check(j["host"] == "b", "old libckpt: migrate said %s" % p.stdout)
    ck.check(j.get("restored_as_it_arrived") is False, "old libckpt: %s" % p.stdout)
    ck.check(src.wait(timeout=30) == 75, "old libckpt: the source did not exit 75 after the handoff")
    ck.check(open(starts).read().split() == ["follow", "whole"], "old libckpt: started %r" % open(starts).read())
    got = result_on(work)
    ck.check(got == [ref], "old libckpt: result %s, want %s" % (got, ref))
    shutil.rmtree(work)


def copies_on(host, work):
    """PIDs on HOST of processes whose working directory is WORK (a restored heat left behind)."""
    out = host.run(["sh", "-c", 'for p in /proc/[0-9]*; do [ "$(readlink $p/cwd 2>/dev/null)" = "%s" ] && '
                    'echo ${p#/proc/}; done; true' % work], capture_output=True, text=True).stdout
    return out.split()


def check_program_faults(hosts, ref):
    # The program is absent on the target: refused before the source is touched.
    check_source_survives(hosts, ref, "absent program", "b", ["--program", "heat=/nonexistent/heat"],
                          "not available on b")
    # A byte changed in transit: the frame checksum catches it.
    check_source_survives(hosts, ref, "corrupt byte", "b", [], "failed its checksum",
                          env_extra={"CKPT_MIGRATE_FAULT": "corrupt-data"})
    # The connection cut in the middle of the transfer.
    cut = os.path.join(ck.tempdir("mig-cut"), "cut-receive")
    with open(cut, "w") as f:
        f.write("#!/bin/sh\ndd bs=64K iflag=count_bytes count=1000000 status=none | %s \"$@\"\n" % CKPT)
    os.chmod(cut, 0o755)
    check_source_survives(hosts, ref, "cut connection", "b", ["--remote-ckpt", cut], "b")
    # The target's receive killed after the transfer, before confirming.
    die = cut + "-die"
    with open(die, "w") as f:
        f.write("#!/bin/sh\nCKPT_RECEIVE_FAULT=die-before-ready exec %s \"$@\"\n" % CKPT)
    os.chmod(die, 0o755)
    check_source_survives(hosts, ref, "receiver killed", "b", ["--remote-ckpt", die], "b")
    shutil.rmtree(os.path.dirname(cut))
    # The target's spool is full (c: 4 MiB; this heat's image is 8 MiB).
    big = ["1024", calibrated_steps(1024, 3.0)]
    big_ref = ck.result_line(ck.run([HEAT] + big + ["--ckpt-no-listen"], check=0).stdout)
    check_source_survives(hosts, ref, "spool full", "c", [], "No space left", args=big, source_ref=big_ref)


# --- an unmodified process (transparent engine) ----------------------------------

COUNTER = r"""
import sys, time
f = open(sys.argv[1], "a", buffering=1)
i = 0
while True:
    f.write("%d\n" % i)
    i += 1
    time.sleep(0.005)
"""


def start_at_pid(host, argv, pid_floor, **kw):
    """Starts argv on host with a PID above pid_floor (free on the other hosts too)."""
    host.run(["sh", "-c", "echo %d > /proc/sys/kernel/ns_last_pid" % pid_floor], check=True)
    return host.popen(argv, **kw)


def check_counter(path):
    nums = [int(l) for l in open(path).read().split("\n")[:-1]]
    ck.check(nums == list(range(len(nums))), "counter has a gap or repeat: %s..." %
             [x for i, x in enumerate(nums) if x != i][:5])
    return len(nums)


def migrate_seen_before_end(hosts, src, pid, dest):
    """A migration whose last frame (END) the source holds back until the restored process is seen on the
    target: the target restores while the image arrives, not after."""
    gate = os.path.join(ck.tempdir("mig-gate"), "go")
    p = hosts[src].popen(migrate_argv(hosts, pid, dest), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=ck.env(CKPT_MIGRATE_FAULT="hold-end:" + gate, **ENV))
    try:
        wait_for(lambda: alive(hosts[dest], pid) or p.poll() is not None, "the restored process on " + dest)
        ck.check(p.poll() is None and alive(hosts[dest], pid),
                 "the process did not appear on %s before the image was whole" % dest)
    finally:
        open(gate, "w").close()
    out, err = p.communicate(timeout=180)
    if p.returncode != 0:
        ck.fail("migrate with the END frame held exited %d:\n%s\n%s" % (p.returncode, out, err))
    shutil.rmtree(os.path.dirname(gate))
    return p, json.loads(out)


def check_process_round_trips(hosts):
    work = ck.tempdir("mig-proc")
    log = os.path.join(work, "counter.log")
    a = hosts["a"]
    proc = start_at_pid(a, ["python3", "-c", COUNTER, log], 20000, stdin=open(os.devnull),
                        stdout=open(os.devnull, "w"), stderr=open(os.devnull, "w"), start_new_session=True)
    pid = proc.ns_pid
    wait_for(lambda: os.path.exists(log) and os.path.getsize(log) > 10, "the counter to start")
    where = "a"
    for hop in range(6):
        dest = "b" if where == "a" else "a"
        before = check_counter(log)
        kept = os.path.join(work, "kept")
        if hop == 1:
            p, j = migrate_seen_before_end(hosts, where, pid, dest)
        else:
            p, j = migrate(hosts, where, pid, dest, *(["--keep-image", kept] if hop == 0 else []))
        ck.check(j["kind"] == "process" and j["pid"] == pid and j["host"] == dest, "hop %d: %s" % (hop, p.stdout))
        # The target restored it while the image arrived.
        ck.check(j.get("restored_as_it_arrived") is True, "hop %d: not restored as it arrived: %s" % (hop, p.stdout))
        if hop == 0:  # the copy kept at the source is a whole, valid image
            ck.check(j.get("kept_image") == os.path.join(kept, "process.ckpt"), "kept_image: %s" % p.stdout)
            ck.run([CKPT, "verify", j["kept_image"]], check=0)
        wait_for(lambda: check_counter(log) > before + 20, "the counter to go on after hop %d" % hop)
        ck.check(alive(hosts[dest], pid), "hop %d: the counter does not run on %s" % (hop, dest))
        # The source's copy got its SIGKILL once DONE came; ckpt does not
        # wait for the kernel to tear it down (docs/cli.md, ckpt dump).
        wait_for(lambda: not alive(hosts[where], pid), "hop %d: the counter to end on %s" % (hop, where), 10)
        where = dest
    n = check_counter(log)
    hosts[where].run(["kill", "-9", str(pid)])
    ck.check(n > 100, "counter too short: %d" % n)
    # A taken PID on the target: the restore fails, the source runs on.
    blocker = start_at_pid(hosts["b"], ["sleep", "300"], pid - 1)
    ck.check(blocker.ns_pid == pid, "could not take pid %d on b (got %d)" % (pid, blocker.ns_pid))
    proc = start_at_pid(a, ["python3", "-c", COUNTER, log + "2"], pid - 1, stdin=open(os.devnull),
                        stdout=open(os.devnull, "w"), stderr=open(os.devnull, "w"), start_new_session=True)
    ck.check(proc.ns_pid == pid, "counter got pid %d, want %d" % (proc.ns_pid, pid))
    wait_for(lambda: os.path.exists(log + "2") and os.path.getsize(log + "2") > 10, "the second counter")
    p, _ = migrate(hosts, "a", pid, "b", expect=1)
    ck.check("runs on here as before" in p.stderr and "b" in p.stderr, p.stderr)
    before = check_counter(log + "2")
    wait_for(lambda: check_counter(log + "2") > before + 20, "the source counter to go on")
    ck.check(not ck.spool_entries(hosts["b"].path(hosts.spool)), "spool of b not empty")
    blocker.kill()
    proc.kill()
    shutil.rmtree(work)


def zdtm_result(d, timeout=60):
    return wait_for(lambda: os.path.exists(os.path.join(d, "result")) and open(os.path.join(d, "result")).read(),
                    "the tree's verdict", timeout)


def start_sysv_tree(hosts, d, floor):
    prog = os.path.join(ck.BIN, "zdtm_sysv_pc")
    tree = start_at_pid(hosts["a"], [prog, d], floor, stdin=open(os.devnull), stdout=open(os.devnull, "w"),
                        stderr=open(os.devnull, "w"), start_new_session=True)
    wait_for(lambda: os.path.exists(os.path.join(d, "ready")), "the SysV tree to be ready")
    return tree


def check_process_done_lost(hosts):
    """The target lets the restored counter go and dies before DONE: the source (the dump worker) asks again,
    learns it was committed and kills its copy. One counter, on b, with no gap or repeat."""
    work = ck.tempdir("mig-proc-lost")
    log = os.path.join(work, "counter.log")
    proc = start_at_pid(hosts["a"], ["python3", "-c", COUNTER, log], 24000, stdin=open(os.devnull),
                        stdout=open(os.devnull, "w"), stderr=open(os.devnull, "w"), start_new_session=True)
    wait_for(lambda: os.path.exists(log) and os.path.getsize(log) > 10, "the counter to start")
    p, j = migrate(hosts, "a", proc.ns_pid, "b", "--remote-ckpt", fault_wrapper(work, "die-after-release"))
    ck.check("confirmation was lost" in p.stderr and j["host"] == "b", "DONE lost: %s %s" % (p.stdout, p.stderr))
    before = check_counter(log)
    wait_for(lambda: check_counter(log) > before + 20, "the counter to go on in b")
    ck.check(alive(hosts["b"], proc.ns_pid) and not alive(hosts["a"], proc.ns_pid), "not exactly one counter")
    hosts["b"].run(["kill", "-9", str(proc.ns_pid)])
    shutil.rmtree(work)


def check_sysv_tree(hosts):
    """A System V producer/consumer tree (tests/engine/zdtm_sysv_pc) a -> b and back three times: after the
    last hop it checks its sequence (no gap, no duplicate), the segment and the semaphores itself."""
    d = ck.tempdir("mig-sysv")
    tree = start_sysv_tree(hosts, d, 22000)
    pid, where = tree.ns_pid, "a"
    for hop in range(6):
        dest = "b" if where == "a" else "a"
        p, j = migrate(hosts, where, pid, dest, "--tree")
        ck.check(j["pid"] == pid and j["host"] == dest, "sysv hop %d: %s" % (hop, p.stdout))
        ck.check(not alive(hosts[where], pid), "sysv hop %d: the tree still runs on %s" % (hop, where))
        time.sleep(0.2)
        where = dest
    open(os.path.join(d, "stop"), "w").close()
    verdict = zdtm_result(d)
    ck.check(verdict == "PASS\n", "the SysV tree after six hops: %s" % verdict)
    shutil.rmtree(d)


def check_process_faults(hosts):
    """The SysV tree's migration fails late (the receiver killed once the tree is restored and held; a byte
    damaged in transit): the tree runs on at the source and passes its own check; nothing is left on b."""
    d = ck.tempdir("mig-sysv-fault")
    tree = start_sysv_tree(hosts, d, 23000)
    die = os.path.join(d, "die-receive")
    with open(die, "w") as f:
        f.write("#!/bin/sh\nCKPT_RECEIVE_FAULT=die-before-ready exec %s \"$@\"\n" % CKPT)
    os.chmod(die, 0o755)
    b = hosts["b"]
    for what, extra, env_extra in (("receiver killed", ["--remote-ckpt", die], {}),
                                   ("corrupt byte", [], {"CKPT_MIGRATE_FAULT": "corrupt-data"})):
        global ENV
        saved = dict(ENV)
        ENV.update(env_extra)
        try:
            p, _ = migrate(hosts, "a", tree.ns_pid, "b", "--tree", *extra, expect=1)
        finally:
            ENV = saved
        ck.check("runs on here as before" in p.stderr, "%s: %s" % (what, p.stderr))
        ck.check(alive(hosts["a"], tree.ns_pid), "%s: the tree is gone from a" % what)
        left = b.run(["pgrep", "-f", "zdtm_sysv_pc"], capture_output=True, text=True).stdout.split()
        ck.check(not left, "%s: tree processes left on b: %s" % (what, left))
        ipcs = b.sh("ipcs -m -s | grep '^0x' || true").stdout.strip()
        ck.check(not ipcs, "%s: System V objects left on b:\n%s" % (what, ipcs))
        ck.check(not ck.spool_entries(b.path(hosts.spool)), "%s: spool of b not empty" % what)
    open(os.path.join(d, "stop"), "w").close()
    verdict = zdtm_result(d)
    ck.check(verdict == "PASS\n", "the SysV tree after the failed migrations: %s" % verdict)
    shutil.rmtree(d)


def main():
    H.skip_unless_available()
    what = sys.argv[1] if len(sys.argv) > 1 else "program"
    ssh_env = {"CKPT_RUNTIME_DIR": RT, "PATH": ck.BIN + ":/usr/sbin:/usr/bin:/sbin:/bin"}
    with H.Hosts(("a", "b", "c"), spool_size={"a": "64M", "b": "64M", "c": "4M"}, ssh_env=ssh_env) as hosts:
        if what == "program":
            ref = reference()
            check_program_round_trip(hosts, ref)
            check_program_faults(hosts, ref)
            check_program_old_libckpt(hosts, ref)
            check_program_done_lost(hosts, ref)
        elif what == "process":
            check_process_round_trips(hosts)
            check_process_done_lost(hosts)
            check_sysv_tree(hosts)
            check_process_faults(hosts)
        else:
            ck.fail("unknown part " + what)
    print("ok")


if __name__ == "__main__":
    main()
