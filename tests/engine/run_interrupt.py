#!/usr/bin/env python3
"""Interrupted dumps: `ckpt dump` is killed (SIGKILL) or interrupted (SIGINT,
SIGTERM, SIGHUP) at random moments spread over a whole dump, and afterwards
the target must be exactly as before — or, if the image was complete before
the signal, the dump must have happened (docs/engine.md, "Interrupting a
dump"). Checked after every kill: the target is alive (or, after a completed
killing dump, gone with a complete image that restores), every thread's
SigBlk, SigIgn and SigCgt are as before, nothing is pending, no ckpt mapping
is left (/proc/PID/maps as before), TracerPid is 0, the image directory
holds no temporary file and a previous image is unchanged; at the end the
program checks its own data (sequence numbers, patterns, System V state).

  run_interrupt.py CKPT BINDIR heap|sysv|restore|worker [--kills N] [--seed S]

heap: zdtm_counter with a 300 MiB pattern, killing dumps (a completed dump
      is restored and the loop goes on with the restored process).
sysv: zdtm_sysv_pc (producer/consumer over System V IPC), --tree
      --leave-running.
restore: `ckpt restore` of a zdtm_sysv_pc tree is killed instead: nothing
      of the tree may be left (no process, no System V object) unless the
      restore was complete, and then the tree runs untraced; the image
      finally restores and the program checks its data.
worker: the dump's worker process itself is killed (SIGKILL, by a test
      hook) after the freeze, after collecting, while copying pages, and
      after the image is in place, in --leave-running and killing dumps of
      a zdtm_sysv_pc tree: the `ckpt dump` process puts back what the worker
      had changed (masks, gadget areas, semaphore values, SEM_UNDO
      adjustments), so the tree runs on untouched and its data is intact;
      killed while it kills the tree after a complete image, the tree is
      killed (the dump is finished) and the image restores.
"""
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import json

CKPT, BIN, MODE = sys.argv[1], sys.argv[2], sys.argv[3]
KILLS = 50
SEED = None
KEEP_GOING = False  # --keep-going: count broken targets instead of stopping at the first (measurements)
args = sys.argv[4:]
while args:
    if args[0] == "--keep-going":
        KEEP_GOING = True
        args = args[1:]
    elif args[0] == "--kills":
        KILLS = int(args[1])
        args = args[2:]
    elif args[0] == "--seed":
        SEED = int(args[1])
        args = args[2:]
    else:
        sys.exit("unknown option " + args[0])
if SEED is None:
    SEED = int.from_bytes(os.urandom(4), "little")
if os.environ.get("CKPT_TEST_SANITIZED") == "1":
    # The sanitizer build runs every phase ~3x slower: half the kills still hit every phase of a dump
    # (the moments are spread over a calibrated whole), and the release build runs them all.
    KILLS = max(10, KILLS // 2)
rng = random.Random(SEED)
print(f"seed {SEED}")

W = tempfile.mkdtemp(prefix="ckpt-interrupt.")
IMG = os.path.join(W, "img")
procs = []  # Popen objects to reap
failures = []


def cleanup():
    # Every process of the test has W in its arguments.
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == os.getpid():
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                if W.encode() in f.read():
                    os.kill(int(p), signal.SIGKILL)
        except OSError:
            pass
    for p in procs:
        try:
            p.wait(timeout=5)
        except Exception:
            pass
    try:
        for k in open(os.path.join(W, "ipc_keys")).read().split():
            for flag in ("-M", "-S", "-Q"):
                subprocess.run(["ipcrm", flag, k], stderr=subprocess.DEVNULL)
    except OSError:
        pass
    shutil.rmtree(W, ignore_errors=True)


class Broken(Exception):
    pass


IN_LOOP = False


def die(msg):
    if KEEP_GOING and IN_LOOP:
        raise Broken(msg)
    print("FAIL: " + msg)
    try:
        print("result: " + open(os.path.join(W, "result")).read())
    except OSError:
        pass
    cleanup()
    sys.exit(1)


def wait_file(path, seconds):
    end = time.time() + seconds
    while time.time() < end:
        if os.path.exists(path) and os.path.getsize(path) > 0:
            return True
        time.sleep(0.02)
    return False


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read().rsplit(")", 1)[1].split()[0]
        return st not in ("Z", "X")
    except OSError:
        return False


def status_fields(path):
    out = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def members(root):
    """The root and its descendants (sysv: consumer and producer)."""
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return sorted(out)


def fds(p):
    out = {}
    for fd in os.listdir(f"/proc/{p}/fd"):
        try:
            out[fd] = os.readlink(f"/proc/{p}/fd/{fd}")
        except OSError:
            pass
    return out


def snapshot(pids):
    """What a dump must not change, per process: its maps and descriptors
    and, per thread, its signal mask, ignored and caught signals."""
    snap = {}
    for p in pids:
        with open(f"/proc/{p}/maps") as f:
            maps = f.read() + "fds " + repr(sorted(fds(p).items()))
        threads = {}
        for t in sorted(os.listdir(f"/proc/{p}/task")):
            s = status_fields(f"/proc/{p}/task/{t}/status")
            threads[t] = (s["SigBlk"], s["SigIgn"], s["SigCgt"])
        snap[p] = (maps, threads)
    return snap


def check_untouched(pids, before, what):
    """The target runs as before: same maps, masks, handlers; not traced,
    nothing pending, not stopped."""
    errs = []
    for p in pids:
        if not alive(p):
            errs.append(f"process {p} is gone")
            continue
        maps, threads = before[p]
        try:
            with open(f"/proc/{p}/maps") as f:
                now = f.read() + "fds " + repr(sorted(fds(p).items()))
        except OSError:
            errs.append(f"process {p} vanished")
            continue
        if now != maps:
            a, b = set(maps.splitlines()), set(now.splitlines())
            errs.append(f"process {p} maps or descriptors changed: added {sorted(b - a)} removed {sorted(a - b)}")
        for t, (blk, ign, cgt) in threads.items():
            try:
                s = status_fields(f"/proc/{p}/task/{t}/status")
            except OSError:
                errs.append(f"thread {t} of {p} is gone")
                continue
            if s["TracerPid"] != "0":
                errs.append(f"thread {t} of {p} is still traced by {s['TracerPid']}")
            if s["State"][0] in "tT":
                errs.append(f"thread {t} of {p} is left in state {s['State']}")
            if s["SigBlk"] != blk:
                errs.append(f"thread {t} of {p}: SigBlk {s['SigBlk']}, was {blk}")
            if (s["SigIgn"], s["SigCgt"]) != (ign, cgt):
                errs.append(f"thread {t} of {p}: handlers changed (SigIgn {s['SigIgn']} SigCgt {s['SigCgt']})")
            if int(s["SigPnd"], 16) != 0 or int(s["ShdPnd"], 16) != 0:
                errs.append(f"thread {t} of {p}: signals pending (SigPnd {s['SigPnd']} ShdPnd {s['ShdPnd']})")
    if errs:
        die(what + ": " + "; ".join(errs))


def image_id():
    try:
        st = os.stat(os.path.join(IMG, "process.ckpt"))
        return (st.st_ino, st.st_mtime_ns, st.st_size)
    except OSError:
        return None


def ckpt_processes(tag):
    """ckpt processes (the dump or restore and any helper of it) still
    working on `tag`."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if tag.encode() in cmd and alive(int(p)) and int(p) != os.getpid():
            out.append(int(p))
    return out


def start_target():
    if MODE == "heap":
        argv = [os.path.join(BIN, "zdtm_counter"), W, "300"]
    else:
        argv = [os.path.join(BIN, "zdtm_sysv_pc"), W]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=open(os.path.join(W, "stdout"), "w"),
                         stderr=subprocess.STDOUT, close_fds=True)
    procs.append(p)
    if not wait_file(os.path.join(W, "ready"), 120):
        die("the program never became ready")
    return p.pid


def finish():
    """Lets the program finish: its own check of its data decides."""
    open(os.path.join(W, "stop"), "w").close()
    if not wait_file(os.path.join(W, "result"), 300):
        die("the program gave no result")
    res = open(os.path.join(W, "result")).read()
    print("result: " + res.strip())
    if not res.startswith("PASS"):
        die("the program found its data damaged")
    cleanup()
    print("PASS")
    sys.exit(0)


def restore():
    r = subprocess.run([CKPT, "restore", "-D", IMG, "--detach"], capture_output=True, text=True)
    if r.returncode != 0:
        die("restore of a completed dump failed: " + r.stderr)
    return int(r.stdout.strip().splitlines()[-1])


DUMP_OPTS = ["--no-sync"] + (["--tree", "--leave-running"] if MODE == "sysv" else [])


def sysv_keys():
    """The program's System V keys still present on the host."""
    keys = set(int(k) for k in open(os.path.join(W, "ipc_keys")).read().split())
    found = []
    for kind in ("shm", "sem", "msg"):
        with open(f"/proc/sysvipc/{kind}") as f:
            next(f)
            found += [f"{kind} key {int(l.split()[0]):#x}" for l in f if int(l.split()[0]) in keys]
    return found


def program_processes():
    """Processes of the program under test (W in their arguments), ckpt's aside."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == os.getpid():
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if cmd and not cmd[0].endswith(b"ckpt") and W.encode() in cmd and alive(int(p)):
            out.append(int(p))
    return sorted(out)


def kill_tree(pids):
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    end = time.time() + 10
    while any(alive(p) for p in pids) and time.time() < end:
        time.sleep(0.01)
    if not os.path.exists(os.path.join(W, "ipc_keys")):
        return
    for k in open(os.path.join(W, "ipc_keys")).read().split():
        for flag in ("-M", "-S", "-Q"):
            subprocess.run(["ipcrm", flag, k], stderr=subprocess.DEVNULL)


def restore_mode():
    pid = start_target()
    r = subprocess.run([CKPT, "dump", str(pid), "--tree", "-D", IMG], capture_output=True, text=True)
    if r.returncode != 0:
        die("dump failed: " + r.stderr)
    procs[-1].wait()
    end = time.time() + 10
    while program_processes() and time.time() < end:
        time.sleep(0.01)
    if program_processes() or sysv_keys():
        die("the killing dump left the tree or its objects")
    walls = []
    for _ in range(3):
        t0 = time.monotonic()
        r = subprocess.run([CKPT, "restore", "-D", IMG, "--detach"], capture_output=True, text=True)
        walls.append(time.monotonic() - t0)
        if r.returncode != 0:
            die("restore failed: " + r.stderr)
        kill_tree(program_processes())
    wall = sorted(walls)[1]
    print(f"a whole restore: {wall * 1000:.0f} ms")
    outcomes = {"nothing left": 0, "restored": 0}
    for i in range(KILLS):
        sig = signal.SIGKILL if i % 2 == 1 else signal.SIGINT
        delay = rng.uniform(0, wall * 1.1)
        out = open(os.path.join(W, "restore.out"), "w")
        p = subprocess.Popen([CKPT, "restore", "-D", IMG, "--detach"], stdout=out, stderr=subprocess.STDOUT,
                             close_fds=True)
        procs.append(p)
        time.sleep(delay)
        p.send_signal(sig)
        rc = p.wait()
        out.close()
        end = time.time() + 60
        while ckpt_processes(IMG) and time.time() < end:
            time.sleep(0.01)
        if ckpt_processes(IMG):
            die(f"kill {i}: ckpt processes {ckpt_processes(IMG)} still run a minute after the restore was killed")
        name = signal.Signals(sig).name
        where = f"kill {i} ({name} after {delay * 1000:.1f} ms, exit {rc})"
        time.sleep(0.05)  # processes killed with ckpt may take a moment to go
        procs_left = program_processes()
        if procs_left and len(procs_left) == 2 and procs_left[0] == pid:
            # The restore was complete: the tree runs, untraced, not stopped.
            outcomes["restored"] += 1
            for q in procs_left:
                st = status_fields(f"/proc/{q}/status")
                if st["TracerPid"] != "0" or st["State"][0] in "tT":
                    die(f"{where}: restored process {q} is left {st['State']}, traced by {st['TracerPid']}")
            kill_tree(procs_left)
        else:
            end = time.time() + 5
            while program_processes() and time.time() < end:
                time.sleep(0.01)
            if program_processes():
                die(f"{where}: processes of a restore that did not complete run on: {program_processes()}")
            if sysv_keys():
                die(f"{where}: System V objects left by a restore that did not complete: {sysv_keys()}")
            outcomes["nothing left"] += 1
        print(f"ok kill {i}: {name} after {delay * 1000:.1f} ms: "
              f"{'restored' if procs_left else 'nothing left'}")
    print(f"outcomes: {outcomes}")
    r = subprocess.run([CKPT, "restore", "-D", IMG, "--detach"], capture_output=True, text=True)
    if r.returncode != 0:
        die("the final restore failed: " + r.stderr)
    finish()


def worker_mode():
    pid = start_target()
    time.sleep(0.2)
    pids = members(pid)
    before = snapshot(pids)
    done = 0
    for rep in range(3):
        for point in ("freeze", "collect", "pages", "commit"):
            for opts in (["--tree", "--leave-running"], ["--tree"]):
                prev = image_id()
                env = dict(os.environ, CKPT_ENGINE_FAULT="kill-worker-at-" + point)
                if rep == 2:
                    env["CKPT_ENGINE_DUMP_COPY"] = "in-place"  # the processes hold the image open meanwhile
                r = subprocess.run([CKPT, "dump", str(pid), "-D", IMG, "--no-sync"] + opts, capture_output=True,
                                   text=True, env=env)
                where = f"worker killed at {point} ({' '.join(opts)})"
                if r.returncode != 1 or "worker process" not in r.stderr:
                    die(f"{where}: exit {r.returncode}: {r.stderr}")
                left = sorted(set(os.listdir(IMG)) - {"process.ckpt"}) if os.path.isdir(IMG) else []
                if left:
                    die(f"{where}: files left in the image directory: {left}")
                new_image = image_id() != prev and image_id() is not None
                if new_image != (point == "commit"):
                    die(f"{where}: new image {new_image}: {r.stderr}")
                if new_image:
                    v = subprocess.run([CKPT, "verify", os.path.join(IMG, "process.ckpt")], capture_output=True)
                    if v.returncode != 0:
                        die(f"{where}: the image does not verify")
                check_untouched(pids, before, where + ": " + r.stderr.strip())
                done += 1
    print(f"{done} dumps whose worker was killed: the tree ran on untouched")
    # Killed while it killed the tree after a complete image: the dump is
    # finished (the tree killed, its System V objects left on the host).
    env = dict(os.environ, CKPT_ENGINE_FAULT="kill-worker-at-end")
    r = subprocess.run([CKPT, "dump", str(pid), "-D", IMG, "--tree"], capture_output=True, text=True, env=env)
    if r.returncode != 1 or "after the image was complete" not in r.stderr:
        die(f"worker killed while killing the tree: exit {r.returncode}: {r.stderr}")
    procs[-1].wait()
    end = time.time() + 10
    while program_processes() and time.time() < end:
        time.sleep(0.01)
    if program_processes():
        die(f"worker killed while killing the tree: processes {program_processes()} still run")
    kill_tree([])  # the System V objects that stayed behind; the image has them
    r = subprocess.run([CKPT, "restore", "-D", IMG, "--detach"], capture_output=True, text=True)
    if r.returncode != 0:
        die("restore after the finished dump failed: " + r.stderr)
    finish()


if MODE == "restore":
    restore_mode()
if MODE == "worker":
    MODE = "sysv"
    worker_mode()

pid = start_target()
time.sleep(0.2)
pids = members(pid)
if MODE == "sysv" and len(pids) != 2:
    die(f"expected consumer and producer, found {pids}")
before = snapshot(pids)

# How long a whole dump takes, and its phases (from a --leave-running dump).
cal = os.path.join(W, "cal")
runs = []
for _ in range(3):
    t0 = time.monotonic()
    r = subprocess.run([CKPT, "dump", str(pid), "-D", cal, "--leave-running", "--json"] + DUMP_OPTS[:1] +
                       (["--tree"] if MODE == "sysv" else []), capture_output=True, text=True)
    if r.returncode != 0:
        die("calibration dump failed: " + r.stderr)
    runs.append((time.monotonic() - t0, json.loads(r.stdout)))
    shutil.rmtree(cal)
    check_untouched(pids, before, "after a calibration dump")
wall, ph = sorted(runs, key=lambda x: x[0])[1]
order = ["freeze", "collect", "comm", "pagemap", "pages", "finish", "end"]
startup = max(0.0, wall - ph["total_ms"] / 1000)
bounds, acc = [("start", startup)], startup
for k in order:
    acc += ph["phases_ms"][k] / 1000
    bounds.append((k, acc))
print(f"a whole dump: {wall * 1000:.0f} ms (process start and exit {startup * 1000:.0f} ms), phases " +
      ", ".join(f"{k} {ph['phases_ms'][k]:.0f}" for k in order))


def phase_of(delay):
    for name, end in bounds:
        if delay < end:
            return name
    return "after"


SIGS = [signal.SIGINT, signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
counts = {}
outcomes = {"rolled back": 0, "completed": 0}
broken = []


def one_kill(i):
    global pid, pids, before
    sig = signal.SIGKILL if i % 2 == 1 else SIGS[(i // 2) % len(SIGS)]
    delay = rng.uniform(0, wall * 1.1)
    prev = image_id()
    out = open(os.path.join(W, "dump.out"), "w")
    p = subprocess.Popen([CKPT, "dump", str(pid), "-D", IMG] + DUMP_OPTS, stdout=out, stderr=subprocess.STDOUT,
                         close_fds=True)
    procs.append(p)
    time.sleep(delay)
    p.send_signal(sig)
    rc = p.wait()
    out.close()
    # A killed dump's helper may still be putting things back.
    end = time.time() + 60
    while ckpt_processes(IMG) and time.time() < end:
        time.sleep(0.01)
    if ckpt_processes(IMG):
        die(f"kill {i}: ckpt processes {ckpt_processes(IMG)} still run a minute after the dump was killed")
    msg = open(os.path.join(W, "dump.out")).read().strip()
    name = signal.Signals(sig).name
    key = (phase_of(delay), name)
    counts[key] = counts.get(key, 0) + 1
    left = sorted(set(os.listdir(IMG)) - {"process.ckpt"}) if os.path.isdir(IMG) else []
    if left:
        die(f"kill {i} ({name} after {delay * 1000:.1f} ms): files left in the image directory: {left}")
    new_image = image_id() != prev and image_id() is not None
    target_alive = all(alive(p) for p in pids)
    where = f"kill {i} ({name} after {delay * 1000:.1f} ms, phase {key[0]}, exit {rc}: {msg[-300:]!r})"
    # A signal that arrives while ckpt starts (before it has set up its
    # handlers) or once it is done (after the dump and its report) ends it
    # as usual: before it touched anything, or after the image was complete.
    outside = rc == -sig and (new_image or target_alive)
    if sig != signal.SIGKILL and rc not in (0, 1) and not outside:
        die(f"{where}: interrupted dump exited with {rc}, expected 1 (or 0 if it had completed)")
    if sig != signal.SIGKILL and rc == 1 and not new_image and "interrupted by SIG" not in msg:
        die(f"{where}: the message does not say the dump was interrupted")
    if new_image:
        outcomes["completed"] += 1
        v = subprocess.run([CKPT, "verify", os.path.join(IMG, "process.ckpt")], capture_output=True, text=True)
        if v.returncode != 0:
            die(f"{where}: the committed image does not verify: {v.stdout}{v.stderr}")
        if sig != signal.SIGKILL and rc not in (0, -sig):
            die(f"{where}: an image was committed but the dump reported failure")
        if MODE == "heap":
            # A killed process may take a moment to free its memory.
            end = time.time() + 10
            while target_alive and time.time() < end:
                time.sleep(0.01)
                target_alive = any(alive(p) for p in pids)
            if target_alive:
                die(f"{where}: the dump completed but the process still runs")
            for q in procs:
                if q.pid == pid:
                    q.wait()
            pid = restore()
            time.sleep(0.1)
            pids = members(pid)
            before = snapshot(pids)
        else:
            check_untouched(pids, before, where)
    else:
        outcomes["rolled back"] += 1
        if not target_alive:
            die(f"{where}: the process is gone and no new image was written")
        if rc == 0:
            die(f"{where}: the dump reported success but wrote no image")
        check_untouched(pids, before, where)
    print(f"ok {where.split(' (')[0]}: {name} after {delay * 1000:.1f} ms ({key[0]}): "
          f"{'image complete' if new_image else 'rolled back'}")


IN_LOOP = True
for i in range(KILLS):
    try:
        one_kill(i)
    except Broken as e:
        # Measuring (--keep-going): note it, start the program afresh.
        print("BROKEN: " + str(e)[:600])
        broken.append(str(e))
        kill_tree(program_processes())
        for q in procs:
            try:
                q.wait(timeout=5)
            except Exception:
                pass
        shutil.rmtree(IMG, ignore_errors=True)
        for f in ("ready", "result", "log"):
            try:
                os.unlink(os.path.join(W, f))
            except OSError:
                pass
        pid = start_target()
        time.sleep(0.2)
        pids = members(pid)
        before = snapshot(pids)
IN_LOOP = False
if broken:
    print(f"{len(broken)} of {KILLS} kills left the program damaged")
    die(f"{len(broken)} of {KILLS} kills left the program damaged")

print("kills per phase: " + ", ".join(f"{ph}/{s}: {n}" for (ph, s), n in sorted(counts.items())))
print(f"outcomes: {outcomes}")
finish()
