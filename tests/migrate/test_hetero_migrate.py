#!/usr/bin/env python3
"""Migration between heterogeneous hosts over ssh (issue 11, docs/migration.md
"Heterogeneous hosts"): a ckpt program (examples/heat) started on Linux
x86-64 host `a` moves, mid-run, to a Windows host `w` (the Windows build,
`ckpt.exe receive`, under Wine), from there to an s390x host `s` (the s390x
build under qemu-user), and back to `a` — each hop a `ckpt migrate` run on
the host the program is on, over ssh — and prints the result of an
uninterrupted Linux run, bit for bit.

Then a dependent group (examples/jacobi, 2 members, `ckpt run` on a) moves to
w (`ckpt.exe receive` coordinates jacobi.exe under Wine) and back to a with
`ckpt.exe migrate` run on w — once refused for a frame damaged in transit
(the group runs on at w, a keeps nothing), then for real: the result equals
an uninterrupted run's, no member or ckpt.exe is left on w, and neither spool
keeps anything (`test_hetero_migrate.py [program] [group]`: only those parts).

The hosts are namespaces with their own sshd (tests/lib/hosts.py). Host `w`
runs Wine with a copy of the test prefix of its own (a wineserver inside the
host's PID namespace, started beforehand so that no Wine service holds an
ssh session open). Pacing, not correctness: between hops the program is
stopped (SIGSTOP) and it runs again (SIGCONT) as soon as the next `ckpt
migrate` starts, so that a fast host does not finish it before the slow one
(qemu) has had it; the handoff itself is untouched.

Skipped (77) without hosts, Wine, qemu-s390x or the cross builds.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

LIB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib")
sys.path.insert(0, LIB)
import ckpttest as ck  # noqa: E402
import hosts as H  # noqa: E402

CKPT = os.path.join(ck.BIN, "ckpt")
HEAT = os.path.join(ck.BIN, "heat")
WIN = os.path.join(ck.CROSS_ROOT, "windows-x64", "bin")
S390 = os.path.join(ck.CROSS_ROOT, "linux-s390x", "bin")
RT = "/run/ckpt"  # each host's own runtime directory (a private tmpfs /run)
HEAT_ARGS = ["256", "300000"]


def skip(why):
    print("SKIP: " + why)
    sys.exit(ck.SKIP)


def wait_for(pred, what, timeout=60.0):
    return ck.wait_for(pred, what, timeout)


class Chain:
    def __init__(self, hosts, work, prefix):
        self.hosts, self.work, self.prefix = hosts, work, prefix
        self.env = ck.env(CKPT_RUNTIME_DIR=RT, WINEPREFIX=prefix, WINEDEBUG="-all")
        self.ssh = "ssh -F " + hosts.ssh_config
        self.wckpt = "wine " + ck.wine_path(os.path.join(WIN, "ckpt.exe"))
        self.sckpt = "qemu-s390x " + os.path.join(S390, "ckpt")

    def procs(self, host, word):
        """(pid here, pid in the host, command line) of the host's processes whose command line has `word`."""
        me = os.readlink("/proc/%d/ns/pid" % host.init_pid)
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                if os.readlink("/proc/%s/ns/pid" % d) != me:
                    continue
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
                with open("/proc/%s/status" % d) as f:
                    nspid = [int(l.split()[-1]) for l in f if l.startswith("NSpid:")][0]
            except (OSError, IndexError):
                continue
            if word in cmd:
                out.append((int(d), nspid, cmd))
        return out

    def heat_proc(self, host, ns_pid=None):
        """The host pid of the heat running on `host` (heat.exe on w)."""
        word = "heat.exe" if host.name == "w" else "heat"
        found = [p for p in self.procs(host, word) if "migrate" not in p[2] and "receive" not in p[2]
                 and not p[2].startswith("sh ") and (ns_pid is None or p[1] == ns_pid)]
        return found[0][0] if len(found) == 1 else None

    def hop(self, src, pid, src_pid_here, dest, argv_prefix, extra):
        """`ckpt migrate PID --to ssh://DEST` on host src while the program
        (stopped, host pid src_pid_here) runs again; returns the JSON answer
        and the target's program, stopped again, by its host pid."""
        argv = argv_prefix + ["migrate", str(pid), "--to", self.hosts[dest].url, "--ssh", self.ssh, "--json"] + extra
        t0 = time.time()
        p = self.hosts[src].popen(argv, cwd=self.work, env=self.env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        err = []
        t = threading.Thread(target=lambda: err.append(p.stderr.read()), daemon=True)
        t.start()
        watchdog = threading.Timer(240, p.kill)  # a hang fails the test, with what it said
        watchdog.daemon = True
        watchdog.start()
        os.kill(src_pid_here, signal.SIGCONT)
        lines = []
        for line in p.stdout:  # the answer comes before ssh has ended
            lines.append(line)
            if line.rstrip() == "}":
                break
        j = None
        if lines and lines[-1].rstrip() == "}":
            j = json.loads("".join(lines))
        here = None
        if j is not None:
            d = self.hosts[dest]
            here = wait_for(lambda: self.heat_proc(d, None if dest == "w" else j["pid"]),
                            "the program on " + dest, 30)
            os.kill(here, signal.SIGSTOP)
        rest = p.stdout.read()
        rc = p.wait()
        watchdog.cancel()
        t.join()
        took = time.time() - t0
        if rc != 0 or j is None:
            ck.fail("%s: exited %d\nstdout:\n%s%s\nstderr:\n%s" % (" ".join(argv), rc, "".join(lines), rest,
                                                                  "".join(err)))
        ck.check(j["host"] == dest.upper() or j["host"] == dest, "%s -> %s: host %s" % (src, dest, j["host"]))
        ck.check(j["kind"] == "program" and j["pid"] > 0, "%s -> %s said: %s" % (src, dest, j))
        print("ok   %s -> %s in %.1f s (downtime %.0f ms, %d bytes): %s" % (src, dest, took, j["downtime_ms"],
                                                                        j["bytes_sent"], "".join(err).strip()))
        return j, here

    def registered(self, host):
        """The registrations of the programs on host."""
        d = host.path(RT)
        names = os.listdir(d) if os.path.isdir(d) else []
        regs = [self.registration(host, int(f[:-5])) for f in names if f.endswith(".json")]
        return [r for r in regs if r]

    def registration(self, host, pid):
        path = host.path("%s/%d.json" % (RT, pid))
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None


def reference():
    p = ck.run([HEAT] + HEAT_ARGS + ["--ckpt-no-listen"], check=0, timeout=600)
    return ck.result_line(p.stdout)


def windows_spool(prefix):
    return os.path.join(prefix, "drive_c", "users", os.environ.get("USER", "root"), "AppData", "Local", "ckpt",
                        "spool")


def run_chain(hosts, prefix, ref):
    work = ck.tempdir("mig-hetero")
    c = Chain(hosts, work, prefix)
    a, w, s = hosts["a"], hosts["w"], hosts["s"]
    # On a, Linux x86-64: heat starts and registers, then waits (stopped).
    out = open(os.path.join(work, "source.out"), "ab")
    # Under a shell that waits for it (nsenter would stop itself with it).
    src = a.popen(["sh", "-c", '"$@" & wait $!', "sh", HEAT] + HEAT_ARGS + ["--ckpt-dir", work], cwd=work,
                  stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=c.env)
    out.close()
    pid = wait_for(lambda: c.registered(a), "heat to register on a")[0]["pid"]
    here = c.heat_proc(a, pid)
    os.kill(here, signal.SIGSTOP)
    # In w's spool, what a killed receiver leaves (an entry with an unlocked
    # .lock) and a kept entry (--keep: no .lock): the next receiver sweeps
    # the first and leaves the second.
    wsp = windows_spool(prefix)
    stale, kept = os.path.join(wsp, "m-00000000000000aa"), os.path.join(wsp, "m-00000000000000bb")
    for d, files in ((stale, (".lock", "heat.ckpt")), (kept, ("heat.ckpt",))):
        os.makedirs(d, exist_ok=True)
        for f in files:
            open(os.path.join(d, f), "w").close()
    # a -> w: the Windows build receives, under Wine; heat.exe resumes the image.
    win_exe = ck.wine_path(os.path.join(WIN, "heat.exe"))
    j, here = c.hop("a", pid, here, "w", [CKPT],
                    ["--remote-ckpt", c.wckpt, "--program", "heat=" + win_exe, "--cwd", ck.wine_path(work)])
    ck.check(not os.path.exists(stale), "the Windows receiver did not sweep a dead receiver's entry")
    ck.check(os.path.exists(os.path.join(kept, "heat.ckpt")), "the Windows receiver removed a kept entry")
    shutil.rmtree(kept)
    ck.check(src.wait(timeout=60) == 75, "the source heat on a did not exit 75 after the handoff")
    ck.check(j["stdout"].lower().startswith(ck.wine_path(work).lower()), "output on w went to %s" % j["stdout"])
    reg = wait_for(lambda: c.registration(w, j["pid"]), "heat.exe to register on w")
    ck.check(reg["platform"].startswith("windows") and reg["exe"].lower().endswith("heat.exe"),
             "registration on w: %s" % reg)
    # w -> s: ckpt.exe migrate under Wine runs the Linux ssh; the s390x build receives under qemu.
    sheat = os.path.join(S390, "heat")
    j2, here2 = c.hop("w", j["pid"], here, "s", c.wckpt.split(),
                      ["--remote-ckpt", c.sckpt, "--program", "heat=qemu-s390x " + sheat, "--cwd", work,
                       "--remote-spool", hosts.spool])
    wait_for(lambda: c.heat_proc(w) is None, "heat.exe to leave w")
    reg = wait_for(lambda: c.registration(s, j2["pid"]), "heat to register on s")
    ck.check(reg["platform"].startswith("linux-s390x") and reg["exe"] == sheat, "registration on s: %s" % reg)
    # s -> a: the s390x ckpt migrate under qemu (which runs the native ssh).
    j3, here3 = c.hop("s", j2["pid"], here2, "a", c.sckpt.split(),
                      ["--remote-ckpt", CKPT, "--program", "heat=" + HEAT, "--remote-spool", hosts.spool])
    wait_for(lambda: c.heat_proc(s) is None, "heat to leave s")
    os.kill(here3, signal.SIGCONT)
    path = os.path.join(work, "heat.out")
    got = wait_for(lambda: [l for l in open(path, errors="replace").read().splitlines() if l.startswith("result ")],
                   "heat's result on a", 300)
    ck.check(got == [ref], "a -> w -> s -> a result %s, uninterrupted %s" % (got, ref))
    wait_for(lambda: c.heat_proc(a) is None, "heat to end on a")
    errs = open(os.path.join(work, "heat.err"), errors="replace").read()
    ck.check(errs.count("resumed from") == 3, "heat.err does not show three resumes:\n" + errs)
    # Nothing left in any spool (w: its default, %LOCALAPPDATA%\ckpt\spool).
    for h in ("a", "s"):
        ck.check(not ck.spool_entries(hosts[h].path(hosts.spool)), "spool of %s not empty" % h)
    ck.check(os.path.isdir(wsp) and not ck.spool_entries(wsp), "Windows spool %s not empty (or absent)" % wsp)
    print("ok   a -> w (Windows) -> s (s390x) -> a: %s" % got[0])
    shutil.rmtree(work)


# --- a dependent group: Linux a -> Windows w -> Linux a ----------------------------

JACOBI = os.path.join(ck.BIN, "jacobi")
JAC_ARGS = ["48", "1500"]  # the result; the members' third argument only paces them (µs per sweep)
# 1500 sweeps of 25 ms: ~38 s of work, so that the group is still running when the last hop starts
# (at 8 ms a sweep it sometimes finished on w before the hop back: "connection refused" from a
# coordinator that had ended normally).
JAC_SLOW = "25000"


def group_hop(c, src, argv_prefix, group, dest, extra, fault=None):
    """`ckpt migrate GROUP --to ssh://DEST --json` on host src; the JSON answer. With `fault`
    (CKPT_MIGRATE_FAULT) it must fail, the group running on at src: its error message then."""
    argv = argv_prefix + ["migrate", str(group), "--to", c.hosts[dest].url, "--ssh", c.ssh, "--json"] + extra
    t0 = time.time()
    env = dict(c.env, CKPT_MIGRATE_FAULT=fault) if fault else c.env
    p = c.hosts[src].popen(argv, cwd=c.work, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(120, p.kill)  # a hang fails the test, with what it said
    watchdog.daemon = True
    watchdog.start()
    out, err = p.communicate()
    watchdog.cancel()
    if fault:
        ck.check(p.returncode == 1 and "runs on here as before" in err, "%s with %s: exited %d\n%s%s" % (
            " ".join(argv), fault, p.returncode, out, err))
        return err
    try:
        j = json.loads(out) if p.returncode == 0 else None
    except ValueError:
        j = None
    if j is None:
        # What the source host looked like: the group's registration and who listens where (an
        # intermittent "connection refused" from the coordinator was seen here once in a few runs).
        reg = c.registration(c.hosts[src], group) if str(group).isdigit() else None
        ss = c.hosts[src].run(["ss", "-ltnp"], capture_output=True, timeout=30, text=True)
        ck.fail("%s: exited %d\nstdout:\n%s\nstderr:\n%s\nregistration: %s\nlisteners on %s:\n%s" % (
            " ".join(argv), p.returncode, out, err, reg, src, ss.stdout))
    ck.check(j["kind"] == "group" and j["pid"] > 0 and j["host"].lower() == dest,
             "%s -> %s said: %s" % (src, dest, j))
    print("ok   group %s -> %s in %.1f s (downtime %.0f ms, %d bytes): %s" % (
        src, dest, time.time() - t0, j["downtime_ms"], j["bytes_sent"], err.strip()))
    return j


def group_members(c, host, exe):
    """The host's member processes running `exe` (not ckpt's own processes, whose arguments may name it)."""
    return [p for p in c.procs(host, exe) if "ckpt" not in p[2]]


def group_joined(c, host, ns_pid):
    """The coordinator's registration on host once every member has joined."""
    r = c.registration(host, ns_pid)
    return r if r and r.get("commands") and all(m.get("program") for m in r["commands"]) else None


def run_group(hosts, prefix):
    """jacobi (2 members, a barrier per sweep) started by `ckpt run` on Linux a moves to the Windows host w
    (ckpt.exe receive coordinates jacobi.exe under Wine), then `ckpt.exe migrate` on w moves it back to a;
    the result is bit for bit that of an uninterrupted run, and no member is left behind on either side."""
    work = ck.tempdir("mig-hetero-group")
    c = Chain(hosts, work, prefix)
    a, w = hosts["a"], hosts["w"]
    ref = ck.run([CKPT, "run", "-n", "2", "--dir", work, "-q", "--", JACOBI] + JAC_ARGS, check=0, timeout=120)
    ref = [ck.result_line(ref.stdout)]
    out = open(os.path.join(work, "source.out"), "ab")
    src = a.popen([CKPT, "run", "-n", "2", "--dir", work, "--name", "gj", "--", JACOBI] + JAC_ARGS + [JAC_SLOW],
                  cwd=work, stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=c.env)
    out.close()
    wait_for(lambda: group_joined(c, a, src.ns_pid), "the group to start on a")
    time.sleep(0.5)  # some sweeps on a
    # a -> w: the Windows build receives and coordinates; the members are jacobi.exe.
    wjac = ck.wine_path(os.path.join(WIN, "jacobi.exe"))
    j = group_hop(c, "a", [CKPT], "gj", "w",
                  ["--remote-ckpt", c.wckpt, "--program", "jacobi=" + wjac, "--cwd", ck.wine_path(work)])
    ck.check(src.wait(timeout=60) == 75, "the source group on a did not stop with 75:\n" +
             open(os.path.join(work, "source.out"), errors="replace").read()[-3000:])
    ck.check(not group_members(c, a, JACOBI), "members left on a: %s" % group_members(c, a, JACOBI))
    reg = wait_for(lambda: group_joined(c, w, j["pid"]), "the group to register on w")
    ck.check(len(group_members(c, w, "jacobi.exe")) == 2, "members on w: %s" % group_members(c, w, "jacobi.exe"))
    ck.check(all(m["program"].lower().endswith("jacobi.exe") for m in reg["commands"]) and
             reg.get("cwd", "").lower() == ck.wine_path(work).lower(), "registration on w: %s" % reg)
    time.sleep(1.0)  # some sweeps on w
    # w -> a: ckpt.exe migrate under Wine (it runs the Linux ssh); Linux ckpt receives. First with a
    # byte damaged in transit: refused, the group runs on at w and a keeps nothing; then for real.
    back = ["--remote-ckpt", CKPT, "--program", "jacobi=" + JACOBI, "--cwd", work, "--remote-spool", hosts.spool]
    # Both hops keep a copy of the image the Windows coordinator streams (--keep-image).
    kept = [os.path.join(work, "kept-%d" % i) for i in (1, 2)]
    err = group_hop(c, "w", c.wckpt.split(), j["pid"], "a", back + ["--keep-image", ck.wine_path(kept[0])],
                    fault="corrupt-data")
    ck.check("checksum" in err, "the damaged frame: %s" % err)
    wait_for(lambda: not group_members(c, a, JACOBI) and not ck.spool_entries(a.path(hosts.spool)),
             "a to keep nothing of the damaged hop")
    ck.check(len(group_members(c, w, "jacobi.exe")) == 2 and c.registration(w, j["pid"]),
             "the group does not run on at w after the damaged hop: %s" % group_members(c, w, "jacobi.exe"))
    print("ok   group w -> a with a damaged frame: refused, runs on at w: %s" % err.strip().splitlines()[-1])
    j2 = group_hop(c, "w", c.wckpt.split(), j["pid"], "a", back + ["--keep-image", ck.wine_path(kept[1])])
    wait_for(lambda: not group_members(c, w, "jacobi.exe") and not c.procs(w, "ckpt.exe"),
             "the group (and every ckpt.exe) to leave w")
    # The images of both hops from w were written by the Windows members, and streamed: the group's
    # own directory (shared here) gained no image from them.
    imgs = [json.loads(ck.run([CKPT, "inspect", "--json", os.path.join(d, "gj.ckpt")], check=0).stdout)
            for d in kept]
    ck.check(not ck.images(work), "the streamed hops wrote images into the group's directory: %s" %
             ck.images(work))
    legs = [sorted({m["platform"] for m in i["group"]["members"]}) for i in imgs]
    ck.check(legs == [["windows-x86_64"]] * 2, "the images of the hops from w were written by %s" % legs)
    path = os.path.join(work, "gj.out")
    got = wait_for(lambda: [l for l in open(path, errors="replace").read().splitlines() if l.startswith("result ")],
                   "the group's result on a", 120)
    ck.check(got == ref, "group a -> w -> a result %s, uninterrupted %s\n%s" % (
        got, ref, open(os.path.join(work, "gj.err"), errors="replace").read()[-3000:]))
    wait_for(lambda: not group_members(c, a, JACOBI) and c.registration(a, j2["pid"]) is None,
             "the group to end on a")
    ck.check(not ck.spool_entries(a.path(hosts.spool)), "spool of a not empty")
    wsp = windows_spool(prefix)
    left = [os.path.join(r, f)[len(wsp):] for r, _, fs in os.walk(wsp) for f in fs if "outcomes" not in r]
    ck.check(not os.path.isdir(wsp) or not ck.spool_entries(wsp), "Windows spool %s not empty: %s" % (wsp, left))
    print("ok   group a -> w (Windows) -> a: %s" % got[0])
    shutil.rmtree(work)


def main():
    H.skip_unless_available()
    parts = sys.argv[1:] or ["program", "group"]
    for tool in ("wine", "wineserver", "qemu-s390x"):
        if not shutil.which(tool):
            skip(tool + " is not installed")
    for f in (os.path.join(WIN, "ckpt.exe"), os.path.join(WIN, "heat.exe"), os.path.join(S390, "ckpt"),
              os.path.join(S390, "heat")):
        if not os.path.exists(f):
            skip(f + " is missing (make cross)")
    base = os.environ.get("WINEPREFIX") or os.path.expanduser("~/.wine")
    if not os.path.isfile(os.path.join(base, "system.reg")):
        skip("no initialised Wine prefix at " + base)
    tmp = tempfile.mkdtemp(prefix="ckpt-wineprefix-")
    prefix = os.path.join(tmp, "prefix")
    server_dir = None
    try:
        # A prefix of its own: its wineserver (found through the prefix's
        # inode) runs inside host w; a copy avoids a slow wineboot.
        subprocess.run(["cp", "-a", base, prefix], check=True)
        st = os.stat(prefix)
        server_dir = "server-%x-%x" % (st.st_dev, st.st_ino)  # Wine's directory for this prefix's wineserver
        ref = reference() if "program" in parts else None
        ssh_env = {"CKPT_RUNTIME_DIR": RT, "PATH": ck.BIN + ":/usr/sbin:/usr/bin:/sbin:/bin",
                   "WINEPREFIX": prefix, "WINEDEBUG": "-all"}
        with H.Hosts(("a", "w", "s"), ssh_env=ssh_env) as hosts:
            w = hosts["w"]
            wenv = ck.env(WINEPREFIX=prefix, WINEDEBUG="-all")
            quiet = dict(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # wineserver and Wine's services start here, not inside an ssh
            # session whose pipes they would keep open.
            w.run(["wineserver", "-p"], env=wenv, timeout=60, **quiet)
            w.run(["wine", os.path.join(WIN, "ckpt.exe"), "--version"], env=wenv, timeout=120, **quiet)
            if "program" in parts:
                run_chain(hosts, prefix, ref)
            if "group" in parts:
                run_group(hosts, prefix)
    finally:
        if server_dir:  # what the wineserver killed with host w left (its socket, its lock)
            for d in os.listdir("/tmp"):
                if d.startswith("wine-") or d.startswith(".wine-"):
                    shutil.rmtree(os.path.join("/tmp", d, server_dir), ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
