"""End-to-end tests of dependent process groups (ctest label `group`).

Each case runs real groups under `ckpt run` / `ckpt resume` (real processes,
real shared memory, semaphores and barriers) and verifies data: the ring
consumer checks every message's sequence number and payload (exit 4 on a
message lost, duplicated or reordered) and its final digest must equal the
uninterrupted run's; Jacobi's result line must be bit-for-bit the uninterrupted
run's. Timings are never asserted.

  test_group.py CASE --bin BUILD/bin [--winbin BUILD/windows-x64/bin]

Exit 77 (ctest SKIP) when a case needs Wine or the Windows build and they are
missing."""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SKIP = 77
A = None  # parsed arguments
WORK = None


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def ckpt():
    return os.path.join(A.bin, "ckpt")


def prog(name):
    return os.path.join(A.bin, name)


def winprog(name):
    return os.path.join(A.winbin, name + ".exe")


def run(argv, check_rc=None, timeout=120, env_extra=None):
    env = dict(os.environ)
    env.setdefault("WINEDEBUG", "-all")
    env["CKPT_RUNTIME_DIR"] = os.path.join(WORK, "runtime")
    if env_extra:
        env.update(env_extra)
    t0 = time.time()
    p = subprocess.run([str(a) for a in argv], cwd=WORK, env=env, capture_output=True, text=True,
                       timeout=timeout)
    if os.environ.get("CKPT_TEST_TRACE"):
        print("%.2fs %s" % (time.time() - t0, " ".join(map(str, argv[:4]))), file=sys.stderr)
    if check_rc is not None and p.returncode != check_rc:
        raise Failure("%s exited %d, wanted %d\nstdout:\n%s\nstderr:\n%s" %
                      (" ".join(map(str, argv)), p.returncode, check_rc, p.stdout, p.stderr))
    return p


def start(argv):
    env = dict(os.environ)
    env.setdefault("WINEDEBUG", "-all")
    env["CKPT_RUNTIME_DIR"] = os.path.join(WORK, "runtime")
    out = open(os.path.join(WORK, "bg.out"), "w")
    err = open(os.path.join(WORK, "bg.err"), "w")
    return subprocess.Popen([str(a) for a in argv], cwd=WORK, env=env, stdout=out, stderr=err,
                            start_new_session=True)


def bg_output():
    with open(os.path.join(WORK, "bg.out")) as f:
        out = f.read()
    with open(os.path.join(WORK, "bg.err")) as f:
        err = f.read()
    return out, err


def wait_group_gone(pgid, limit=60):
    """Waits until no process of session/group `pgid` is left (orphaned members)."""
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.killpg(pgid, signal.SIGKILL)
    raise Failure("members of process group %d still running after %d s" % (pgid, limit))


def result(text, prefix="result "):
    lines = [l for l in text.splitlines() if l.startswith(prefix)]
    check(len(lines) == 1, "want one '%s' line, got:\n%s" % (prefix, text))
    return lines[0]


def images(name):
    return sorted(f for f in os.listdir(WORK) if re.fullmatch(re.escape(name) + r"\.\d{6}\.ckpt", f))


def inspect(path):
    return json.loads(run([ckpt(), "inspect", "--json", path], check_rc=0).stdout)


def ring_spec(name, count, pdelay=0, cdelay=0, windows=False):
    path = os.path.join(WORK, name + ".group")
    if windows:
        lines = ["wine %s %d %d" % (winprog("ring_producer"), count, pdelay),
                 "wine %s %d %d" % (winprog("ring_consumer"), count, cdelay)]
    else:
        lines = ["%s %d %d" % (prog("ring_producer"), count, pdelay),
                 "%s %d %d" % (prog("ring_consumer"), count, cdelay)]
    with open(path, "w") as f:
        f.write("# producer and consumer through a ring buffer\n" + "\n".join(lines) + "\n")
    return path


def ring_reference(count):
    spec = ring_spec("ref", count)
    p = run([ckpt(), "run", "--spec", spec, "--dir", "refdir", "-q"], check_rc=0)
    return result(p.stdout)


def jacobi_reference(n, sweeps, members=3):
    p = run([ckpt(), "run", "-n", members, "--dir", "refdir", "-q", "--", prog("jacobi"), n, sweeps], check_rc=0)
    return result(p.stdout)


WINE_KEEPER = None


def need_wine():
    if not A.winbin or not os.path.exists(winprog("ring_producer")) or shutil.which("wine") is None:
        print("SKIP: needs wine and the windows-x64 build (%s)" % A.winbin)
        sys.exit(SKIP)
    # The server outlives this call: leave it no pipe of ours to hold open.
    subprocess.run(["wineserver", "-p60"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Start Wine's session services now, with no pipe of ours (those started
    # by a member would hold the coordinator's output open until they exit),
    # and keep them running until this test exits: one Windows process reads a
    # pipe only we hold (see ckpttest.start_wineserver).
    global WINE_KEEPER
    if WINE_KEEPER is None:
        WINE_KEEPER = subprocess.Popen(["wine", "cmd", "/c", "pause"], stdin=subprocess.PIPE,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        subprocess.run(["wine", "cmd", "/c", "exit"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=300)


# --- cases -----------------------------------------------------------------------------------

def case_ring_checkpoints():
    """Many periodic checkpoints while the ring runs; every one resumable; all data intact."""
    count = 6000
    ref = ring_reference(count)
    spec = ring_spec("ring", count, pdelay=200)
    p = run([ckpt(), "run", "--spec", spec, "--every", "0.05", "--keep", "100"], check_rc=0)
    check(result(p.stdout) == ref, "periodic checkpoints changed the result:\n%s\n%s" % (result(p.stdout), ref))
    imgs = images("ring")
    check(len(imgs) >= 5, "wanted at least 5 checkpoints, got %s\n%s" % (imgs, p.stderr))
    # Every image resumes to the same end (one consumer check per message).
    for img in imgs[:: max(1, len(imgs) // 4)]:
        q = run([ckpt(), "resume", img, "--dir", "resumed", "-q"], check_rc=0)
        check(result(q.stdout) == ref, "resume from %s gave %s, want %s" % (img, result(q.stdout), ref))
    # A chain: stop after a checkpoint, resume, stop again, resume to the end.
    shutil.rmtree(os.path.join(WORK, "chain"), ignore_errors=True)
    runs = [run([ckpt(), "run", "--spec", spec, "--dir", "chain", "--every", "0.1", "--stop-after", "2"],
                check_rc=75)]
    for _ in range(2):
        runs.append(run([ckpt(), "resume", "chain", "--every", "0.1", "--stop-after", "1"], check_rc=75))
    runs.append(run([ckpt(), "resume", "chain"], check_rc=0))
    check(result(runs[-1].stdout) == ref, "chain result %s != %s" % (result(runs[-1].stdout), ref))
    gids = [m.group(1) for r in runs for m in re.finditer(r"group id (g\d+x\d+)", r.stderr)]
    check(len(gids) == len(runs), "group ids: %s" % gids)
    left = [f for f in os.listdir("/dev/shm") if any(f.startswith("ckpt.%s." % g) for g in gids)]
    check(not left, "shared memory objects left behind: %s" % left)


def case_jacobi_bitwise():
    """Jacobi with a barrier per sweep: stopped and resumed twice, bit-identical result."""
    ref = jacobi_reference(64, 400)
    run([ckpt(), "run", "-n", 3, "--every", "0.1", "--stop-after", 2, "--", prog("jacobi"), 64, 400, 2000],
        check_rc=75)
    run([ckpt(), "resume", ".", "--every", "0.1", "--stop-after", 1], check_rc=75)
    p = run([ckpt(), "resume", "."], check_rc=0)
    check(result(p.stdout) == ref, "jacobi after restores:\n%s\nuninterrupted:\n%s" % (result(p.stdout), ref))


def case_blocked_consumer():
    """A checkpoint while the consumer is blocked on an empty buffer: no deadlock, pending wait recorded."""
    count = 60
    ref = ring_reference(count)
    spec = ring_spec("slow", count, pdelay=50000)  # the consumer spends its time in full.wait()
    p = start([ckpt(), "run", "--spec", spec, "--name", "slow", "--keep", "10"])
    time.sleep(0.8)
    # The consumer spends nearly all its time blocked; a request landing in the
    # microseconds it runs finds it at a safepoint instead. Try a few times.
    for attempt in range(5):
        c = run([ckpt(), "checkpoint", "slow"], check_rc=0, timeout=60)
        img = c.stdout.strip()
        check(os.path.exists(os.path.join(WORK, img)), "no image at %r" % img)
        j = inspect(img)
        waits = [m["pending_wait"] for m in j["group"]["members"]]
        if waits[1] == "semaphore full":
            break
        time.sleep(0.13)
    check(p.wait(timeout=60) == 0, "group failed: %s" % (bg_output(),))
    check(result(bg_output()[0]) == ref, "result differs: %s" % (bg_output(),))
    check(j["kind"] == "group", "kind: %s" % j["kind"])
    check(waits[1] == "semaphore full", "consumer's pending wait: %s" % waits)
    full = [o for o in j["group"]["objects"] if o["name"] == "full"][0]
    check(full["value"] == 0, "full's count at the checkpoint: %s" % full)
    q = run([ckpt(), "resume", img, "--dir", "again", "-q"], check_rc=0)
    check(result(q.stdout) == ref, "resumed: %s != %s" % (result(q.stdout), ref))


def case_barrier_checkpoint():
    """A checkpoint while members sit in a barrier (one member is slow)."""
    ref = jacobi_reference(32, 40)
    p = start([ckpt(), "run", "-n", 3, "--name", "jac", "--keep", "10", "--", prog("jacobi"), 32, 40, 40000])
    time.sleep(0.5)
    for attempt in range(4):
        c = run([ckpt(), "checkpoint", "jac"], check_rc=0, timeout=60)
        img = c.stdout.strip()
        waits = [m["pending_wait"] for m in inspect(img)["group"]["members"]]
        if "barrier sweep" in waits:
            break
    check(p.wait(timeout=60) == 0, "group failed: %s" % (bg_output(),))
    check(result(bg_output()[0]) == ref, "result differs: %s" % (bg_output(),))
    check(waits.count("barrier sweep") >= 1, "no member recorded in the barrier: %s" % waits)
    q = run([ckpt(), "resume", img, "--dir", "again", "-q"], check_rc=0)
    check(result(q.stdout) == ref, "resumed: %s != %s" % (result(q.stdout), ref))


def case_timeout():
    """A member that reaches no quiescent point in time: checkpoint abandoned, named, group runs on."""
    ref = jacobi_reference(32, 6)
    p = start([ckpt(), "run", "-n", 3, "--name", "late", "--timeout", "0.5", "--", prog("jacobi"), 32, 6, 1500000])
    time.sleep(0.3)
    c = run([ckpt(), "checkpoint", "late"], timeout=60)
    check(c.returncode == 1, "checkpoint should fail: rc %d %s" % (c.returncode, c.stderr))
    check("member 2 (jacobi" in c.stderr and "no quiescent point" in c.stderr, "message: " + c.stderr)
    check(p.wait(timeout=90) == 0, "group did not run on: %s" % (bg_output(),))
    check(result(bg_output()[0]) == ref, "result differs: %s" % (bg_output(),))
    check(images("late") == [], "an abandoned checkpoint left an image: %s" % images("late"))
    check(not [f for f in os.listdir(WORK) if f.endswith(".tmp")], "temporary file left behind")


def case_client_timeout():
    """`ckpt checkpoint GROUP --timeout S` gives up on a coordinator that never answers."""
    import socket
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    reg = {"kind": "group", "group": "mute", "id": "mute-1", "pid": os.getpid(), "port": lst.getsockname()[1]}
    with open(os.path.join(WORK, "runtime", "%d.json" % os.getpid()), "w") as f:
        json.dump(reg, f)
    c = run([ckpt(), "checkpoint", "mute", "--timeout", "0.3"], timeout=60)
    lst.close()
    check(c.returncode == 1, "checkpoint should time out: rc %d %s" % (c.returncode, c.stderr))
    check("did not answer within 0.3 s" in c.stderr, "message: " + c.stderr)


def case_kill_member():
    """A member killed during a checkpoint: clear error, previous image intact and resumable."""
    ref = jacobi_reference(32, 30)
    p = start([ckpt(), "run", "-n", 3, "--name", "victim", "--timeout", "20", "--", prog("jacobi"), 32, 30, 60000])
    time.sleep(0.5)
    run([ckpt(), "checkpoint", "victim"], check_rc=0, timeout=60)
    good = images("victim")
    check(len(good) == 1, "first checkpoint: %s" % good)
    with open(os.path.join(WORK, good[0]), "rb") as f:
        before = f.read()
    # The slow member (rank 2) sleeps 3 s per sweep now? No: kill it while the others are parked.
    c = start_checkpoint_and_kill("victim", rank=2, parent=p)
    check(c.returncode == 1, "checkpoint should fail: %s" % c.stderr)
    rc = p.wait(timeout=60)
    _, err = bg_output()
    check(rc == 1 and "member 2 (jacobi" in err, "coordinator should report the dead member: rc %d\n%s" % (rc, err))
    check(images("victim") == good, "images changed: %s" % images("victim"))
    with open(os.path.join(WORK, good[0]), "rb") as f:
        check(f.read() == before, "the previous image was modified")
    q = run([ckpt(), "resume", good[0], "--dir", "again", "-q"], check_rc=0)
    check(result(q.stdout) == ref, "resumed: %s != %s" % (result(q.stdout), ref))


def member_pids(parent_pid):
    out = subprocess.run(["ps", "-o", "pid=,ppid=,args=", "--ppid", str(parent_pid)], capture_output=True,
                         text=True).stdout
    return [line.split(None, 2) for line in out.splitlines()]


def start_checkpoint_and_kill(name, rank, parent):
    members = member_pids(parent.pid)
    check(len(members) == 3, "members: %s" % members)
    env = dict(os.environ, CKPT_RUNTIME_DIR=os.path.join(WORK, "runtime"))
    c = subprocess.Popen([ckpt(), "checkpoint", name], cwd=WORK, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    time.sleep(0.02)  # the request is out; the slow member is mid-sweep, the others park
    # Members are started in rank order; the slow one is the last.
    os.kill(int(sorted(members, key=lambda m: int(m[0]))[rank][0]), signal.SIGKILL)
    out, err = c.communicate(timeout=60)
    return subprocess.CompletedProcess(c.args, c.returncode, out, err)


def case_kill_coordinator():
    """The coordinator is killed: its members end too (none runs on alone); the last image resumes correctly."""
    count = 8000
    ref = ring_reference(count)
    spec = ring_spec("orphan", count, pdelay=500)  # ~4.5 s: the members are far from their end
    p = start([ckpt(), "run", "--spec", spec, "--name", "orphan", "--every", "0.1"])
    deadline = time.time() + 30
    while len(images("orphan")) < 2 and time.time() < deadline:
        time.sleep(0.02)
    check(len(images("orphan")) >= 2, "no checkpoints: %s" % (bg_output(),))
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    wait_group_gone(p.pid)
    out, err = bg_output()
    check("result" not in out, "members ran on to their end without their coordinator: %s" % out)
    for img in images("orphan"):
        q = run([ckpt(), "resume", img, "--dir", "again", "-q"], check_rc=0)
        check(result(q.stdout) == ref, "resume %s: %s" % (img, q.stdout))
    for f in os.listdir("/dev/shm"):  # a killed coordinator cannot remove them (docs/groups.md)
        if f.startswith("ckpt.g%dx" % p.pid):
            os.unlink(os.path.join("/dev/shm", f))


def case_signals():
    """Ctrl-C (SIGINT to the whole process group), SIGTERM or SIGHUP to the coordinator: the members end,
    the group's shared memory objects and registration are removed, the last image stays good."""
    count = 8000
    ref = ring_reference(count)
    spec = ring_spec("sig", count, pdelay=500)  # ~4.5 s
    for sig, whole_group in ((signal.SIGINT, True), (signal.SIGTERM, False), (signal.SIGHUP, False)):
        shutil.rmtree(os.path.join(WORK, "sigdir"), ignore_errors=True)
        p = start([ckpt(), "run", "--spec", spec, "--name", "sig", "--dir", "sigdir", "--every", "0.1"])
        reg_path = wait_registration(p.pid)[1]
        deadline = time.time() + 30
        while not os.path.isdir(os.path.join(WORK, "sigdir")) or not [
                f for f in os.listdir(os.path.join(WORK, "sigdir")) if f.endswith(".ckpt")]:
            check(time.time() < deadline, "no checkpoint: %s" % (bg_output(),))
            time.sleep(0.02)
        if whole_group:
            os.killpg(p.pid, sig)
        else:
            os.kill(p.pid, sig)
        rc = p.wait(timeout=60)
        wait_group_gone(p.pid)
        out, err = bg_output()
        what = "%s%s" % (signal.Signals(sig).name, " to the process group" if whole_group else "")
        check(rc == 128 + sig, "%s: coordinator rc %d\n%s" % (what, rc, err))
        check("interrupted by %s" % signal.Signals(sig).name in err, "%s: message: %s" % (what, err))
        check("result" not in out, "%s: members ran to their end: %s" % (what, out))
        gid = re.search(r"group id (g\d+x\d+)", err).group(1)
        left = [f for f in os.listdir("/dev/shm") if f.startswith("ckpt.%s." % gid)]
        check(not left, "%s: shared memory objects left: %s" % (what, left))
        check(not os.path.exists(reg_path), "%s: registration left" % what)
        imgs = sorted(f for f in os.listdir(os.path.join(WORK, "sigdir")) if f.endswith(".ckpt"))
        check(not [f for f in os.listdir(os.path.join(WORK, "sigdir")) if f.endswith(".tmp")], "temp files left")
        q = run([ckpt(), "resume", os.path.join("sigdir", imgs[-1]), "--dir", "again", "-q"], check_rc=0)
        check(result(q.stdout) == ref, "%s: resumed %s: %s" % (what, imgs[-1], q.stdout))


def procs_with(text):
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [int(l.split(None, 1)[0]) for l in out.splitlines() if text in l]


def wait_procs_gone(text, what, limit=60):
    deadline = time.time() + limit
    while procs_with(text) and time.time() < deadline:
        time.sleep(0.1)
    left = procs_with(text)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    check(not left, "%s: members still running %d s after their coordinator ended: %s" % (what, limit, left))


def case_wine_orphans():
    """Windows members never outlive their coordinator: Linux coordinator killed (members started directly,
    and through a shell that does not exec), Windows coordinator killed, and Ctrl-C to a Windows coordinator."""
    need_wine()
    env = dict(os.environ, WINEDEBUG="-all", CKPT_RUNTIME_DIR=os.path.join(WORK, "runtime"))
    winenv = dict(env, CKPT_RUNTIME_DIR="Z:" + os.path.join(WORK, "runtime").replace("/", "\\"))
    for n, (how, env_) in enumerate((("linux", env), ("linux-sh", env), ("windows", winenv),
                                     ("windows-ctrl-c", winenv))):
        mark = "32 %d 2000" % (770000 + n)  # unique arguments: these members' command line
        if how == "linux":
            argv = [ckpt(), "run", "-n", 3, "--", "wine", winprog("jacobi")] + mark.split()
        elif how == "linux-sh":
            spec = os.path.join(WORK, "sh.group")
            with open(spec, "w") as f:  # the shell is the coordinator's child, the member its grandchild
                f.write('2x sh -c "wine %s %s; true"\n' % (winprog("jacobi"), mark))
            argv = [ckpt(), "run", "--spec", spec]
        else:
            argv = ["wine", winprog("ckpt"), "run", "-n", 2, "--", winprog("jacobi")] + mark.split()
        # Output to files: members that outlive the coordinator must not be hidden by waiting for a pipe.
        with open(os.path.join(WORK, "o.txt"), "w") as o, open(os.path.join(WORK, "e.txt"), "w") as e:
            p = subprocess.Popen([str(a) for a in argv], cwd=WORK, env=env_, stdout=o, stderr=e,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 60
        while len(procs_with("jacobi.exe " + mark)) < 2 and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(1)  # the members have joined
        check(len(procs_with("jacobi.exe " + mark)) >= 2, "%s: members did not start" % how)
        if how == "windows-ctrl-c":
            os.killpg(p.pid, signal.SIGINT)
        else:
            coord = procs_with("ckpt.exe run -n 2") if how.startswith("windows") else [p.pid]
            for c in coord:
                os.kill(c, signal.SIGKILL)
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        wait_procs_gone("jacobi.exe " + mark, how)
        out, err = (open(os.path.join(WORK, f)).read() for f in ("o.txt", "e.txt"))
        check("result" not in out, "%s: members ran to their end: %s" % (how, out))
        if how == "windows-ctrl-c":
            check(p.returncode == 130 and "interrupted by Ctrl-C" in err, "%s: rc %d %s" % (how, p.returncode, err))
        if how == "linux-sh":
            # Killed after its members joined, the coordinator is "gone"; on a loaded machine a member
            # may only reach the connect when it is already dead ("cannot reach"): either way each
            # member that got that far says why it ended.
            said = err.count("the group coordinator is gone") + err.count("cannot reach the group coordinator")
            check(said >= 1, "%s: members' message: %s" % (how, err))


def case_corrupt_image():
    """Corrupt and truncated group images are refused before any member starts; the good one still works."""
    count = 2000
    ref = ring_reference(count)
    spec = ring_spec("bad", count, pdelay=300)
    run([ckpt(), "run", "--spec", spec, "--name", "bad", "--every", "0.1", "--stop-after", 1], check_rc=75)
    img = images("bad")[0]
    data = open(os.path.join(WORK, img), "rb").read()
    seg = inspect(img)
    ring_sec = [s for s in seg["sections"] if s["name"] == "ring"][0]
    bad = bytearray(data)
    bad[ring_sec["offset"] + 40] ^= 0x10  # a byte of the ring segment's payload
    open(os.path.join(WORK, "flipped.ckpt"), "wb").write(bytes(bad))
    q = run([ckpt(), "resume", "flipped.ckpt"])
    check(q.returncode == 3 and "checksum" in q.stderr, "flipped byte: rc %d %s" % (q.returncode, q.stderr))
    check("result" not in q.stdout, "members ran from a corrupt image")
    open(os.path.join(WORK, "short.ckpt"), "wb").write(data[: len(data) // 2])
    q = run([ckpt(), "resume", "short.ckpt"])
    check(q.returncode == 3, "truncated: rc %d %s" % (q.returncode, q.stderr))
    q = run([ckpt(), "resume", img, "--dir", "again", "-q"], check_rc=0)
    check(result(q.stdout) == ref, "good image: %s" % q.stdout)


def case_wine_migration():
    """Linux -> Windows (Wine) -> Linux for the ring, and Windows -> Linux for Jacobi; data intact."""
    need_wine()
    count = 8000
    ref = ring_reference(count)
    spec = ring_spec("mig", count, pdelay=300)
    run([ckpt(), "run", "--spec", spec, "--name", "mig", "--every", "0.1", "--stop-after", 2], check_rc=75)
    # Under Wine short sleeps barely sleep: the members themselves ask for the
    # checkpoint (and the stop) at their 1500th safepoint of this run.
    run([ckpt(), "resume", ".", "--name", "mig", "--bindir", A.winbin, "--launcher", "wine"], check_rc=75,
        env_extra={"CKPT_STOP_AT": "1500"})
    j = inspect(images("mig")[-1])
    plats = {m["platform"] for m in j["group"]["members"]}
    check(plats == {"windows-x86_64"}, "the Windows leg's image was written by %s" % plats)
    q = run([ckpt(), "resume", images("mig")[-1], "--bindir", A.bin], check_rc=0)
    check(result(q.stdout) == ref, "after Linux->Windows->Linux: %s != %s" % (result(q.stdout), ref))
    # Jacobi: started on Windows, finished on Linux, bit for bit.
    jref = jacobi_reference(48, 300)
    run([ckpt(), "run", "-n", 3, "--name", "wj", "--", "wine", winprog("jacobi"), 48, 300], check_rc=75,
        env_extra={"CKPT_STOP_AT": "100"})
    q = run([ckpt(), "resume", images("wj")[-1], "--bindir", A.bin], check_rc=0)
    check(result(q.stdout) == jref, "jacobi Windows->Linux: %s != %s" % (result(q.stdout), jref))


def case_s390x_migration():
    """Linux x86-64 -> big-endian s390x (qemu-user): typed segments are converted, results bit for bit."""
    if not A.s390xbin or not os.path.exists(os.path.join(A.s390xbin, "jacobi")) or not shutil.which("qemu-s390x"):
        print("SKIP: needs the linux-s390x cross build and qemu-s390x")
        sys.exit(77)
    jref = jacobi_reference(48, 300)
    run([ckpt(), "run", "-n", 3, "--name", "bj", "--", prog("jacobi"), 48, 300], check_rc=75,
        env_extra={"CKPT_STOP_AT": "120"})
    q = run([ckpt(), "resume", images("bj")[-1], "--bindir", A.s390xbin, "--launcher", "qemu-s390x"], check_rc=0,
            timeout=600)
    check(result(q.stdout) == jref, "jacobi x86-64 -> s390x: %s != %s" % (result(q.stdout), jref))
    # The ring's u64 array and semaphore counts, producer and consumer both moving to s390x mid-stream.
    count = 3000
    ref = ring_reference(count)
    spec = ring_spec("bring", count)
    run([ckpt(), "run", "--spec", spec, "--name", "bring"], check_rc=75, env_extra={"CKPT_STOP_AT": "700"})
    run([ckpt(), "resume", images("bring")[-1], "--bindir", A.s390xbin, "--launcher", "qemu-s390x"],
        check_rc=75, timeout=600, env_extra={"CKPT_STOP_AT": "700"})
    j = inspect(images("bring")[-1])
    plats = {m["platform"] for m in j["group"]["members"]}
    check(plats == {"linux-s390x"}, "the s390x leg's image was written by %s" % plats)
    q = run([ckpt(), "resume", images("bring")[-1], "--bindir", A.bin], check_rc=0, timeout=600)
    check(result(q.stdout) == ref, "ring x86-64 -> s390x -> x86-64: %s != %s" % (result(q.stdout), ref))


def run_bounded(argv, limit, env_extra=None):
    """Runs a group in its own session; on `limit` seconds the whole session is killed (members too)."""
    env = dict(os.environ, CKPT_RUNTIME_DIR=os.path.join(WORK, "runtime"))
    env.setdefault("WINEDEBUG", "-all")
    env.update(env_extra or {})
    p = subprocess.Popen([str(a) for a in argv], cwd=WORK, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        out, err = p.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise Failure("%s did not end within %d s (hung)" % (" ".join(map(str, argv[:8])), limit))
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def case_wine_barriers():
    """Windows members crossing barriers thousands of times, more members than CPUs: no lost wake-up.

    A Windows semaphore token released for one waiter could be taken by another that waited
    again first; the first then slept forever (group_wine_migration's hang)."""
    need_wine()
    ref = result(run([ckpt(), "run", "-n", 4, "--dir", "refdir", "-q", "--", prog("jacobi"), 8, 20000],
                     check_rc=0).stdout)
    for n in (4, 6):
        p = run_bounded([ckpt(), "run", "-n", n, "--dir", "refdir", "-q", "--", "wine", winprog("jacobi"), 8,
                         20000], 150)
        check(p.returncode == 0, "rc %d: %s" % (p.returncode, p.stderr))
        check(result(p.stdout) == ref, "%d Windows members: %s, Linux: %s" % (n, result(p.stdout), ref))


def solo_run(argv, check_rc):
    """Runs a program alone (a group of one); returns (result line or None, pid)."""
    env = dict(os.environ, CKPT_RUNTIME_DIR=os.path.join(WORK, "runtime"))
    env.setdefault("WINEDEBUG", "-all")
    p = subprocess.Popen([str(a) for a in argv], cwd=WORK, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    out, err = p.communicate(timeout=120)
    check(p.returncode == check_rc, "%s exited %d, wanted %d\n%s%s" % (argv, p.returncode, check_rc, out, err))
    return (result(out) if check_rc == 0 else None), p.pid


def check_solo_objects(img, round_, tokens0=100):
    objs = {o["name"]: o for o in inspect(img).get("group_objects", [])}
    check(set(objs) == {"acc", "tokens", "lock", "round"}, "objects in %s: %s" % (img, objs))
    check(objs["tokens"]["value"] == tokens0 - round_, "tokens saved: %s" % objs["tokens"])
    check(objs["lock"]["value"] == 1, "the mutex was saved held: %s" % objs["lock"])
    check(objs["round"]["generation"] == round_, "barrier: %s" % objs["round"])
    run([ckpt(), "verify", img], check_rc=0)


def case_solo_objects():
    """A group program run alone: its checkpoints hold the segment, semaphore, mutex and barrier."""
    ref, _ = solo_run([prog("tally")], 0)
    check("acc[0]=40 " in ref and "tokens left=60" in ref, "uninterrupted tally: %s" % ref)
    # Stop at the 25th safepoint (round 24 not yet taken), resume, stop again, resume to the end.
    _, pid = solo_run([prog("tally"), "--ckpt-stop-at", 25], 75)
    check(images("tally") == ["tally.000001.ckpt"], "images: %s" % images("tally"))
    check_solo_objects("tally.000001.ckpt", 24)
    left = [f for f in os.listdir("/dev/shm") if f.startswith("ckpt.solo%dx" % pid)]
    check(not left, "objects of the stopped program left in /dev/shm: %s" % left)
    solo_run([prog("tally"), "--ckpt-resume", "auto", "--ckpt-stop-at", 7], 75)
    check_solo_objects("tally.000002.ckpt", 30)
    got, pid = solo_run([prog("tally"), "--ckpt-resume", "auto"], 0)
    check(got == ref, "resumed twice: %s, uninterrupted: %s" % (got, ref))
    check(not [f for f in os.listdir("/dev/shm") if f.startswith("ckpt.solo%dx" % pid)], "objects left")
    # The same program as a group of two shares the objects.
    p = run([ckpt(), "run", "-n", 2, "--dir", "refdir", "-q", "--", prog("tally")], check_rc=0)
    check("acc[0]=80 " in result(p.stdout) and "tokens left=20" in result(p.stdout), p.stdout)


def case_solo_wine():
    """A group of one on Windows (Wine), and its image moving Linux -> Windows -> Linux."""
    need_wine()
    ref, _ = solo_run([prog("tally")], 0)
    solo_run(["wine", winprog("tally"), "--ckpt-stop-at", 25], 75)
    check_solo_objects("tally.000001.ckpt", 24)
    got, _ = solo_run(["wine", winprog("tally"), "--ckpt-resume", "auto"], 0)
    check(got == ref, "Windows, resumed: %s, uninterrupted: %s" % (got, ref))
    for f in images("tally"):
        os.unlink(os.path.join(WORK, f))
    solo_run([prog("tally"), "--ckpt-stop-at", 12], 75)
    solo_run(["wine", winprog("tally"), "--ckpt-resume", "auto", "--ckpt-stop-at", 9], 75)
    check_solo_objects("tally.000002.ckpt", 19)
    got, _ = solo_run([prog("tally"), "--ckpt-resume", "auto"], 0)
    check(got == ref, "Linux -> Windows -> Linux: %s, uninterrupted: %s" % (got, ref))


# --- the control channel's authentication (a local attacker) ------------------------------------

MSG_HELLO, MSG_CLIENT_CHECKPOINT, MSG_CHECKPOINT, MSG_REQUEST, MSG_AUTH, MSG_REFUSED = 1, 2, 4, 6, 13, 14


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pstr(b):
    b = b.encode() if isinstance(b, str) else b
    return varint(len(b)) + b


def frame(kind, payload=b""):
    return kind.to_bytes(4, "little") + len(payload).to_bytes(4, "little") + payload


def note(epoch, flag, text=""):
    return varint(epoch) + bytes([flag]) + pstr(text)


def hello(rank, gid, program="jacobi", args=()):
    return (varint(rank) + os.getpid().to_bytes(8, "little") + pstr(gid) + pstr("linux-x86_64") + pstr(program) +
            varint(len(args)) + b"".join(pstr(a) for a in args))


def read_frames(sock, limit):
    """Message types the peer sent until it closed the connection (or `limit` seconds)."""
    import socket
    sock.settimeout(limit)
    data, kinds = b"", []
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            while len(data) >= 8 and len(data) >= 8 + int.from_bytes(data[4:8], "little"):
                kinds.append(int.from_bytes(data[0:4], "little"))
                data = data[8 + int.from_bytes(data[4:8], "little"):]
    except (socket.timeout, ConnectionResetError):
        pass
    return kinds


def wait_registration(pid, limit=30):
    path = os.path.join(WORK, "runtime", "%d.json" % pid)
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            with open(path) as f:
                return json.load(f), path
        except (OSError, ValueError):
            time.sleep(0.02)
    raise Failure("no registration %s: %s" % (path, bg_output()))


def attacker_connect(port):
    import socket
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def case_auth_clients():
    """Clients that do not know the group's secret are refused and the group goes on, undisturbed."""
    ref = jacobi_reference(32, 100)
    p = start([ckpt(), "run", "-n", 3, "--name", "victim", "--", prog("jacobi"), 32, 100, 40000])
    reg, reg_path = wait_registration(p.pid)
    # The registration (port, id and now the secret) is readable by its owner only.
    check(os.stat(reg_path).st_mode & 0o077 == 0, "registration mode %o" % os.stat(reg_path).st_mode)
    # Another user who can list the directory cannot read it, so cannot ask for a checkpoint.
    os.chmod(WORK, 0o755)
    os.chmod(os.path.join(WORK, "runtime"), 0o755)
    other = run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", ckpt(), "checkpoint", "victim",
                 "--exit", "--timeout", 20], timeout=60)
    check(other.returncode != 0, "another user checkpointed the group: %s %s" % (other.stdout, other.stderr))
    # Knowing the port and id (from ss and ps, say) is not enough: without the secret, or with a
    # wrong one, a checkpoint-and-exit request is refused.
    for greeting in (frame(MSG_CLIENT_CHECKPOINT, note(0, 1)),
                     frame(MSG_AUTH, varint(2) + pstr(bytes(32))) + frame(MSG_CLIENT_CHECKPOINT, note(0, 1)),
                     frame(MSG_AUTH, varint(2) + pstr(b"x")) + frame(MSG_HELLO, hello(0, reg["id"]))):
        s = attacker_connect(reg["port"])
        s.sendall(greeting)
        kinds = read_frames(s, 30)
        s.close()
        check(kinds == [MSG_REFUSED], "the coordinator answered an attacker with %s" % kinds)
    # The owner's request still works.
    c = run([ckpt(), "checkpoint", "victim"], timeout=60)
    check(c.returncode == 0, "owner's checkpoint: rc %d %s" % (c.returncode, c.stderr))
    img = c.stdout.strip()
    check(p.wait(timeout=90) == 0, "group disturbed: %s" % (bg_output(),))
    out, err = bg_output()
    check(result(out) == ref, "result %s != %s" % (out, ref))
    check("refused a connection" in err, "refusals not reported: %s" % err)
    check(images("victim") == [img], "images: %s (only the owner's is expected)" % images("victim"))
    q = run([ckpt(), "resume", img, "--dir", "again", "-q"], check_rc=0)
    check(result(q.stdout) == ref, "resumed: %s != %s" % (result(q.stdout), ref))


def case_auth_slow_client():
    """A connection that sends 2 bytes and waits blocks nobody; the coordinator drops it after a while."""
    ref = jacobi_reference(32, 325)  # runs ~13 s: longer than the coordinator's 10 s for a greeting
    p = start([ckpt(), "run", "-n", 3, "--name", "slowc", "--", prog("jacobi"), 32, 325, 40000])
    reg, _ = wait_registration(p.pid)
    s = attacker_connect(reg["port"])
    s.sendall(b"\x02\x00")
    time.sleep(0.2)
    c = run([ckpt(), "checkpoint", "slowc", "--timeout", 30], timeout=90)
    check(c.returncode == 0, "a checkpoint behind a silent connection: rc %d %s" % (c.returncode, c.stderr))
    run([ckpt(), "verify", c.stdout.strip()], check_rc=0)
    kinds = read_frames(s, 60)  # closed by the coordinator's handshake timeout, with a refusal
    s.close()
    check(kinds == [MSG_REFUSED], "the silent connection got %s" % kinds)
    # A checkpoint after the drop, near the end of the run: resuming it checks the data and takes ~2 s
    # (the first image would run the whole ~13 s again).
    late = run([ckpt(), "checkpoint", "slowc", "--timeout", 30], timeout=90)
    check(late.returncode == 0, "a checkpoint after the drop: rc %d %s" % (late.returncode, late.stderr))
    check(p.wait(timeout=90) == 0, "group failed: %s" % (bg_output(),))
    check(result(bg_output()[0]) == ref, "result differs: %s" % (bg_output(),))
    q = run([ckpt(), "resume", late.stdout.strip(), "--dir", "again", "-q"], check_rc=0)
    check(result(q.stdout) == ref, "resumed: %s != %s" % (result(q.stdout), ref))


def case_auth_fake_member():
    """A process that connects first as rank 0 is not admitted and never sees a checkpoint request."""
    import threading
    ref = jacobi_reference(32, 100)
    spec = os.path.join(WORK, "late.group")
    cmd = "%s 32 100 20000" % prog("jacobi")
    with open(spec, "w") as f:
        f.write('sh -c "sleep 2; exec %s"\n%s\n%s\n' % (cmd, cmd, cmd))  # rank 0 joins late
    p = start([ckpt(), "run", "--spec", spec, "--name", "late"])
    reg, _ = wait_registration(p.pid)
    s = attacker_connect(reg["port"])
    s.sendall(frame(MSG_HELLO, hello(0, reg["id"], "jacobi", ["32", "100", "20000"])))
    seen = []
    t = threading.Thread(target=lambda: seen.extend(read_frames(s, 60)))
    t.start()
    c = run([ckpt(), "checkpoint", "late", "--timeout", 60], timeout=90)
    t.join()
    s.close()
    check(MSG_CHECKPOINT not in seen and MSG_REQUEST not in seen,
          "the fake rank 0 was admitted and asked for its state: %s" % seen)
    check(seen == [MSG_REFUSED], "the fake rank 0 got %s" % seen)
    check(c.returncode == 0, "owner's checkpoint: rc %d %s" % (c.returncode, c.stderr))
    check(p.wait(timeout=90) == 0, "group failed: %s" % (bg_output(),))
    check(result(bg_output()[0]) == ref, "result differs: %s" % (bg_output(),))
    img = c.stdout.strip()
    run([ckpt(), "verify", img], check_rc=0)
    q = run([ckpt(), "resume", img, "--dir", "again", "-q"], check_rc=0)
    check(result(q.stdout) == ref, "resumed from the image: %s != %s" % (result(q.stdout), ref))


CASES = {n[len("case_"):]: f for n, f in globals().items() if n.startswith("case_")}


def main():
    global A, WORK
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--bin", required=True)
    ap.add_argument("--winbin", default="")
    ap.add_argument("--s390xbin", default="")
    A = ap.parse_args()
    A.bin = os.path.abspath(A.bin)
    A.winbin = os.path.abspath(A.winbin) if A.winbin else ""
    A.s390xbin = os.path.abspath(A.s390xbin) if A.s390xbin else ""
    WORK = tempfile.mkdtemp(prefix="ckpt-group-%s-" % A.case)
    os.makedirs(os.path.join(WORK, "runtime"))
    try:
        CASES[A.case]()
    except Failure as e:
        print("FAIL %s: %s\n(work dir kept: %s)" % (A.case, e, WORK))
        return 1
    except SystemExit:  # a skip: nothing worth keeping
        shutil.rmtree(WORK, ignore_errors=True)
        raise
    shutil.rmtree(WORK, ignore_errors=True)
    print("PASS %s" % A.case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
