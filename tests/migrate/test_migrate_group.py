#!/usr/bin/env python3
"""Migration of dependent process groups between hosts over ssh
(docs/migration.md, "Groups"), on hosts made by tests/lib/hosts.py.

  jacobi   examples/jacobi, 3 members (a barrier per sweep), a -> b -> a
           mid-run: the result equals an uninterrupted run bit for bit
  ring     the ring producer/consumer a -> b mid-run: no message lost or
           repeated (the consumer checks every one), same digest
  faults   a member program absent on the target, the target's receive
           killed before READY, the source's migration killed while the
           target's copy is held (which must not have run on): each time the
           group runs on at the source to the right result and the target
           keeps nothing (no member, no /dev/shm object, empty spool)

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
JACOBI = os.path.join(ck.BIN, "jacobi")
PRODUCER = os.path.join(ck.BIN, "ring_producer")
CONSUMER = os.path.join(ck.BIN, "ring_consumer")
RT = "/run/ckpt"  # each host's own runtime directory


def env(**extra):
    return ck.env(CKPT_RUNTIME_DIR=RT, **extra)


def wait_for(pred, what, timeout=60.0):
    return ck.wait_for(pred, what, timeout)


def result_lines(text):
    return [l for l in text.splitlines() if l.startswith("result ")]


def read(path):
    return open(path, errors="replace").read() if os.path.exists(path) else ""


def alive(host, ns_pid):
    return host.run(["kill", "-0", str(ns_pid)], capture_output=True).returncode == 0


def registration(host, ns_pid):
    try:
        return json.loads(open(host.path("%s/%d.json" % (RT, ns_pid))).read())
    except (OSError, ValueError):
        return None


def all_joined(host, ns_pid):
    """The coordinator's registration, once every member has joined."""
    r = registration(host, ns_pid)
    return r if r and r.get("commands") and all(m.get("program") for m in r["commands"]) else None


def migrate(hosts, src, target, dest, *extra, expect=0, env_extra=None):
    argv = [CKPT, "migrate", str(target), "--to", hosts[dest].url, "--ssh", hosts.ssh_command, "--json",
            "--remote-spool", hosts.spool]
    argv += ([] if "--remote-ckpt" in extra else ["--remote-ckpt", CKPT]) + list(extra)
    p = hosts[src].run(argv, capture_output=True, text=True, timeout=300, env=env(**(env_extra or {})))
    if p.returncode != expect:
        ck.fail("%s exited %d (wanted %d)\nstdout:\n%s\nstderr:\n%s" % (" ".join(argv), p.returncode, expect,
                                                                      p.stdout, p.stderr))
    return p, (json.loads(p.stdout) if p.returncode == 0 else None)


def start_group(host, work, argv):
    """`ckpt run ...` on host in work (output in source.out/err), once every member has joined."""
    out = open(os.path.join(work, "source.out"), "ab")
    err = open(os.path.join(work, "source.err"), "ab")
    proc = host.popen([CKPT, "run", "--dir", work] + argv, cwd=work, stdout=out, stderr=err,
                      stdin=subprocess.DEVNULL, env=env())
    out.close()
    err.close()
    wait_for(lambda: all_joined(host, proc.ns_pid), "the group to start on " + host.name)
    return proc


def members_on(host, names):
    p = host.run(["pgrep", "-x", "-d", " ", "|".join(names)], capture_output=True, text=True)
    return p.stdout.split()


def group_shm(host):
    return [f for f in os.listdir(host.path("/dev/shm")) if f.startswith("ckpt.")]


def check_target_empty(hosts, dest, names, what):
    d = hosts[dest]
    # The held coordinator notices the end of its migration and cleans up.
    wait_for(lambda: not members_on(d, names) and not group_shm(d) and not ck.spool_entries(d.path(hosts.spool)),
             "%s: %s to keep nothing (members %s, shm %s, spool %s)" % (
                 what, dest, members_on(d, names), group_shm(d), ck.spool_entries(d.path(hosts.spool))), 60)
    ck.check(not members_on(d, ["ckpt"]), "%s: a ckpt process is left on %s" % (what, dest))


# --- jacobi a -> b -> a ----------------------------------------------------------

JACOBI_ARGS = ["64", "2500"]


def check_jacobi(hosts):
    work = ck.tempdir("mig-jac")
    ref = result_lines(ck.run([CKPT, "run", "-n", "3", "--dir", work, "-q", "--", JACOBI] + JACOBI_ARGS,
                              check=0).stdout)
    ck.check(len(ref) == 1, "reference run: %s" % ref)
    a, b = hosts["a"], hosts["b"]
    # 5 ms per sweep: ~12 s, so that two hops and their checks fit in it
    # on a loaded machine under a sanitizer.
    src = start_group(a, work, ["-n", "3", "--name", "jac", "--", JACOBI] + JACOBI_ARGS + ["5000"])
    time.sleep(0.5)
    images = lambda: sorted(f for f in os.listdir(work) if f.endswith(".ckpt"))
    before = images()
    kept = os.path.join(work, "kept")
    p, j = migrate(hosts, "a", "jac", "b", "--keep-image", kept)
    ck.check(j["kind"] == "group" and j["host"] == "b" and j["pid"] > 0, "migrate said: %s" % p.stdout)
    # The coordinator sent the image over its connection: no image file on the source but the kept copy.
    ck.check(images() == before, "the source wrote an image file: %s -> %s" % (before, images()))
    ck.check("streamed to the migration" in read(os.path.join(work, "source.err")),
             "the coordinator did not stream its image:\n%s" % read(os.path.join(work, "source.err"))[-2000:])
    ck.check(j.get("kept_image") == os.path.join(kept, "jac.ckpt"), "kept_image: %s" % p.stdout)
    ck.run([CKPT, "verify", j["kept_image"]], check=0)
    ck.check(j["stdout"] == os.path.join(work, "jac.out"), "output went to %s" % j.get("stdout"))
    ck.check(src.wait(timeout=60) == 75, "the source group did not stop with 75:\n%s" %
             read(os.path.join(work, "source.err"))[-3000:])
    ck.check(alive(b, j["pid"]), "the group's coordinator does not run on b:\n%s" % read(j["stdout"][:-4] + ".err"))
    ck.check(len(members_on(b, ["jacobi"])) == 3, "members on b: %s" % members_on(b, ["jacobi"]))
    ck.check(not members_on(a, ["jacobi"]), "members left on a: %s" % members_on(a, ["jacobi"]))
    wait_for(lambda: all_joined(b, j["pid"]), "the group to register on b")
    time.sleep(0.5)
    # ... and back to a by its coordinator's PID.
    p, j2 = migrate(hosts, "b", j["pid"], "a")
    ck.check(j2["host"] == "a" and j2["kind"] == "group", "second hop said: %s" % p.stdout)
    wait_for(lambda: not alive(b, j["pid"]), "the group to leave b")
    wait_for(lambda: not alive(a, j2["pid"]), "the group to finish on a", 180)
    got = result_lines(read(os.path.join(work, "jac.out")))
    ck.check(got == ref, "a -> b -> a result %s, uninterrupted %s\n%s" % (got, ref, read(os.path.join(work, "jac.err"))))
    ck.check(not result_lines(read(os.path.join(work, "source.out"))), "the source printed a result too")
    for h in ("a", "b"):
        ck.check(not ck.spool_entries(hosts[h].path(hosts.spool)), "spool of %s not empty" % h)
        ck.check(not group_shm(hosts[h]), "shared objects left on %s: %s" % (h, group_shm(hosts[h])))
    shutil.rmtree(work)


# --- the ring a -> b ----------------------------------------------------------------

def ring_spec(work, count, pdelay):
    path = os.path.join(work, "ring.group")
    with open(path, "w") as f:
        f.write("%s %d %d\n%s %d 0\n" % (PRODUCER, count, pdelay, CONSUMER, count))
    return path


def ring_reference(work, count):
    p = ck.run([CKPT, "run", "--spec", ring_spec(work, count, 0), "--dir", os.path.join(work, "ref"), "-q"],
               check=0)
    r = result_lines(p.stdout)
    ck.check(len(r) == 1 and "in-order=yes" in r[0], "ring reference: %s" % p.stdout)
    return r


def check_ring(hosts):
    work = ck.tempdir("mig-ring")
    count = 20000
    ref = ring_reference(work, count)
    a, b = hosts["a"], hosts["b"]
    src = start_group(a, work, ["--spec", ring_spec(work, count, 300), "--name", "ring"])
    time.sleep(1.0)
    p, j = migrate(hosts, "a", "ring", "b")
    ck.check(j["kind"] == "group" and j["host"] == "b", "migrate said: %s" % p.stdout)
    ck.check(src.wait(timeout=60) == 75, "the source ring did not stop with 75")
    wait_for(lambda: not alive(b, j["pid"]), "the ring to finish on b", 180)
    got = result_lines(read(os.path.join(work, "ring.out")))
    ck.check(got == ref, "ring after a -> b: %s, want %s\n%s" % (got, ref, read(os.path.join(work, "ring.err"))))
    ck.check(not ck.spool_entries(b.path(hosts.spool)) and not group_shm(b), "b keeps spool or shm objects")
    shutil.rmtree(work)


# --- faults ---------------------------------------------------------------------------

def start_ring(hosts, work, count, pdelay):
    return start_group(hosts["a"], work, ["--spec", ring_spec(work, count, pdelay), "--name", "ring"])


def check_source_ran_on(hosts, work, src, ref, what):
    ck.check(alive(hosts["a"], src.ns_pid), "%s: the source group is gone (%s)" % (what, src.poll()))
    rc = src.wait(timeout=180)
    out = read(os.path.join(work, "source.out"))
    ck.check(rc == 0, "%s: the source group ended with %d:\n%s" % (what, rc, read(os.path.join(work, "source.err"))[-3000:]))
    ck.check(result_lines(out) == ref, "%s: source result %s, want %s" % (what, result_lines(out), ref))
    # The target's output file: no copy ran there.
    ck.check(not result_lines(read(os.path.join(work, "ring.out"))), "%s: a copy ran on b: %s" % (
        what, read(os.path.join(work, "ring.out"))))
    for f in ("source.out", "source.err", "ring.out"):
        if os.path.exists(os.path.join(work, f)):
            os.remove(os.path.join(work, f))


def check_faults(hosts):
    work = ck.tempdir("mig-gfault")
    count = 6000
    ref = ring_reference(work, count)
    names = ["ring_producer", "ring_consumer"]

    # A member's program absent on the target: refused before the group is touched.
    src = start_ring(hosts, work, count, 1000)
    p, _ = migrate(hosts, "a", "ring", "b", "--program", "ring_consumer=/nonexistent/ring_consumer", expect=1)
    ck.check("not available on b" in p.stderr and "runs on here as before" in p.stderr, p.stderr)
    check_source_ran_on(hosts, work, src, ref, "absent program")
    check_target_empty(hosts, "b", names, "absent program")

    # A byte damaged in transit in the image the coordinator streams: the
    # target's frame check refuses it and the members go on — with the
    # checkpoint abandoned if the stream was still running, else released
    # from the hold (this image fits in one frame, sent after the hold).
    src = start_ring(hosts, work, count, 1000)
    p, _ = migrate(hosts, "a", "ring", "b", expect=1, env_extra={"CKPT_MIGRATE_FAULT": "corrupt-data"})
    ck.check("failed its checksum" in p.stderr and "runs on here as before" in p.stderr, p.stderr)
    wait_for(lambda: any(w in read(os.path.join(work, "source.err")) for w in ("abandoned", "go on")),
             "the coordinator to let the members go on", 30)
    check_source_ran_on(hosts, work, src, ref, "damaged frame")
    check_target_empty(hosts, "b", names, "damaged frame")

    # The target's receive killed once the group is resumed and held, before READY.
    die = os.path.join(work, "die-receive")
    with open(die, "w") as f:
        f.write("#!/bin/sh\nCKPT_RECEIVE_FAULT=die-before-ready exec %s \"$@\"\n" % CKPT)
    os.chmod(die, 0o755)
    src = start_ring(hosts, work, count, 1000)
    p, _ = migrate(hosts, "a", "ring", "b", "--remote-ckpt", die, expect=1)
    ck.check("runs on here as before" in p.stderr, p.stderr)
    check_source_ran_on(hosts, work, src, ref, "receiver killed")
    check_target_empty(hosts, "b", names, "receiver killed")
    err = read(os.path.join(work, "ring.err"))
    ck.check("migration handoff aborted" in err, "the held coordinator on b said:\n%s" % err)
    os.remove(os.path.join(work, "ring.err"))

    # The source's migration killed while the target holds the group: the
    # held copy must not have run (a short rest: released, it would finish
    # and print its result in the pause), and ends; the source goes on.
    small = 2500
    sref = ring_reference(work, small)
    src = start_ring(hosts, work, small, 2000)  # ~5 s at the source
    time.sleep(0.5)
    argv = [CKPT, "migrate", "ring", "--to", hosts["b"].url, "--ssh", hosts.ssh_command, "--remote-spool",
            hosts.spool, "--remote-ckpt", CKPT]
    mig = hosts["a"].popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=env(CKPT_MIGRATE_FAULT="pause-before-commit"))
    line = mig.stderr.readline()
    ck.check("paused before COMMIT" in line, "migrate said: %s" % line)
    ck.check(len(members_on(hosts["b"], names)) == 2, "no held members on b: %s" % members_on(hosts["b"], names))
    time.sleep(6)  # more than the ring's whole rest, were it running
    ck.check(len(members_on(hosts["b"], names)) == 2, "the held members on b ended by themselves")
    mig.send_signal(signal.SIGKILL)
    mig.wait()
    check_source_ran_on(hosts, work, src, sref, "source gave up")
    check_target_empty(hosts, "b", names, "source gave up")
    shutil.rmtree(work)


def main():
    H.skip_unless_available()
    what = sys.argv[1] if len(sys.argv) > 1 else "jacobi"
    ssh_env = {"CKPT_RUNTIME_DIR": RT, "PATH": ck.BIN + ":/usr/sbin:/usr/bin:/sbin:/bin"}
    with H.Hosts(("a", "b"), spool_size="64M", ssh_env=ssh_env) as hosts:
        if what == "jacobi":
            check_jacobi(hosts)
        elif what == "ring":
            check_ring(hosts)
        elif what == "faults":
            check_faults(hosts)
        else:
            ck.fail("unknown part " + what)
    print("ok")


if __name__ == "__main__":
    main()
