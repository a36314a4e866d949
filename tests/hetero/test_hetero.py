"""Heterogeneous migration, for real: Windows builds under Wine, s390x (big
endian) and aarch64 under qemu-user, i686 natively (or under qemu-i386 where
the kernel refuses 32-bit programs). Every resumed run must
print exactly the uninterrupted native run's result line.

  test_hetero.py chain     Linux x86-64 -> Windows -> s390x -> i686 -> aarch64
  test_hetero.py matrix    every platform resumes every platform's image
  test_hetero.py codecs    a build lacking an image's codec says so; convert fixes it
  test_hetero.py windows   `ckpt.exe checkpoint PID [--exit]` against a Windows program
  test_hetero.py dists     random distributions' hidden state crosses every pair of platforms exactly
  test_hetero.py evolve    version 1 of a program's structs, checkpointed on s390x and Windows, resumes
                           in version 2 on every platform (fields added, removed, renamed, widened,
                           converted by ckpt::Upgrade); version 1 refuses version 2's image
"""
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from ckpttest import *  # noqa

# Each program's arguments; the last is its number of steps.
PROGRAMS = {"heat": ["72", "240"], "nbody": ["20", "120"], "wave_c": ["400", "600"], "jobs": ["300"]}
CKPT = os.path.join(BIN, "ckpt")


def need(plats, names):
    have = {p.name for p in plats}
    missing = [n for n in names if n not in have]
    if missing:
        print("SKIP: cross builds missing: %s (run `make cross`)" % ", ".join(missing))
        sys.exit(SKIP)


def by_name(plats):
    return {p.name: p for p in plats}


def chain():
    plats = platforms()
    order = ["linux-x86_64", "windows-x86_64", "linux-s390x", "linux-i686", "linux-aarch64"]
    need(plats, order)
    P = by_name(plats)
    for prog, args in PROGRAMS.items():
        ref = result_line(run(P["linux-x86_64"].cmd(prog, *args), check=0).stdout)
        work = tempdir("chain-" + prog)
        try:
            steps = int(args[-1])
            hop = steps // len(order)
            for i, name in enumerate(order):
                plat = P[name]
                extra = ["--ckpt-dir", ".", "--ckpt-quiet"]
                if i > 0:
                    extra += ["--ckpt-resume", "."]
                if i < len(order) - 1:
                    extra += ["--ckpt-stop-at", hop]
                    p = run(plat.cmd(prog, *(args + extra)), cwd=work, check=75)
                else:
                    p = run(plat.cmd(prog, *(args + extra)), cwd=work, check=0)
                    got = result_line(p.stdout)
                    check(got == ref, "%s chain ended on %s with\n  %s\nbut the uninterrupted run gives\n  %s" %
                          (prog, name, got, ref))
            # The images record where they were written.
            print("ok   chain %s: %s -> identical result" % (prog, " -> ".join(order)))
        finally:
            shutil.rmtree(work, ignore_errors=True)


def pmap(fn, items):
    """fn over items, as many at once as there are cores (each is a program
    run under Wine or qemu, mostly on one core); results in order."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(fn, items))


def matrix():
    plats = platforms()
    need(plats, ["linux-x86_64", "windows-x86_64", "linux-s390x", "linux-aarch64"])
    for prog, args in PROGRAMS.items():
        outs = pmap(lambda p: run(p.cmd(prog, *args), check=0).stdout, plats)
        refs = {p.name: result_line(o) for p, o in zip(plats, outs)}
        ref = refs["linux-x86_64"]
        for name, r in refs.items():
            check(r == ref, "uninterrupted %s on %s differs:\n  %s\n  %s" % (prog, name, r, ref))
        work = tempdir("matrix-" + prog)
        try:
            imgs = {w.name: os.path.join(work, "from-" + w.name) for w in plats}

            def write(w):
                os.mkdir(imgs[w.name])
                run(w.cmd(prog, *(args + ["--ckpt-dir", ".", "--ckpt-quiet", "--ckpt-stop-at", int(args[-1]) // 3])),
                    cwd=imgs[w.name], check=75)

            pmap(write, plats)
            j = run([CKPT, "inspect", "--json", imgs["linux-s390x"]], check=0).stdout
            check('"producer.endian": "big"' in j, "s390x image does not say big-endian")

            def resume(pair):
                w, r = pair
                d = os.path.join(imgs[w.name], "to-" + r.name)
                os.mkdir(d)
                src = os.path.relpath(newest_image(imgs[w.name]), d)
                return run(r.cmd(prog, *(["--ckpt-resume", src, "--ckpt-dir", ".", "--ckpt-quiet"])), cwd=d)

            pairs = [(w, r) for w in plats for r in plats]
            for (w, r), p in zip(pairs, pmap(resume, pairs)):
                check(p.returncode == 0, "%s image from %s failed to resume on %s: exit %d\nstdout:\n%s\nstderr:\n%s" %
                      (prog, w.name, r.name, p.returncode, p.stdout, p.stderr))
                got = result_line(p.stdout)
                check(got == ref, "%s: %s -> %s gives\n  %s\nnot\n  %s" % (prog, w.name, r.name, got, ref))
            print("ok   matrix %s: %d x %d platforms, identical results" % (prog, len(plats), len(plats)))
        finally:
            shutil.rmtree(work, ignore_errors=True)


def codecs():
    plats = platforms()
    need(plats, ["windows-x86_64", "linux-s390x"])
    P = by_name(plats)
    args = PROGRAMS["heat"]
    ref = result_line(run(P["linux-x86_64"].cmd("heat", *args), check=0).stdout)
    work = tempdir("codecs")
    try:
        # Windows builds have zlib, not zstd.
        run(P["windows-x86_64"].cmd("heat", *(args + ["--ckpt-dir", ".", "--ckpt-quiet", "--ckpt-codec", "zlib",
                                                      "--ckpt-stop-at", 100])), cwd=work, check=75)
        p = run(P["windows-x86_64"].cmd("heat", "--ckpt-codec", "zstd"), cwd=work)
        check(p.returncode == 2 and "zstd is not available" in p.stderr, "windows zstd: " + p.stderr)
        img = newest_image(work)
        s390_has_zlib = "zlib" in run(P["linux-s390x"].cmd("ckpt", "--version")).stdout
        if not s390_has_zlib:
            p = run(P["linux-s390x"].cmd("heat", "--ckpt-resume", os.path.basename(img), "--ckpt-dir", "s"), cwd=work)
            check(p.returncode == 3 and "zlib" in p.stderr and "ckpt convert" in p.stderr,
                  "s390x on a zlib image: %d %s" % (p.returncode, p.stderr))
            p = run(P["linux-s390x"].cmd("ckpt", "verify", os.path.basename(img)), cwd=work)
            check(p.returncode == 3 and "zlib" in p.stdout, "s390x verify: " + p.stdout)
        run([CKPT, "convert", img, "--codec", "none"], check=0)
        p = run(P["linux-s390x"].cmd("heat", "--ckpt-resume", os.path.basename(img), "--ckpt-dir", "s",
                                     "--ckpt-quiet"), cwd=work, check=0)
        check(result_line(p.stdout) == ref, "after convert: " + p.stdout)
        print("ok   codecs: zlib image from Windows, refused with a clear message on s390x, converted, resumed")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def windows():
    plats = platforms()
    need(plats, ["windows-x86_64"])
    win = by_name(plats)["windows-x86_64"]
    args = ["96", "200000"]
    ref = result_line(run(platforms()[0].cmd("heat", *args), check=0, timeout=600).stdout)
    work = tempdir("win")
    rt = os.path.join(work, "rt")
    os.mkdir(rt)
    e = env(CKPT_RUNTIME_DIR=wine_path(rt))
    proc = subprocess.Popen(win.cmd("heat", *(args + ["--ckpt-dir", "."])), cwd=work, env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pid = None
        for _ in range(3000):
            regs = [f for f in os.listdir(rt) if f.endswith(".json")]
            if regs:
                pid = regs[0][:-5]
                break
            time.sleep(0.01)
        check(pid is not None, "the Windows program did not register")
        p = run(win.cmd("ckpt", "list", "--json"), cwd=work, env_extra={"CKPT_RUNTIME_DIR": wine_path(rt)})
        listed = [r for r in json.loads(p.stdout)["running"] if str(r["pid"]) == pid] if p.returncode == 0 else []
        check(len(listed) == 1 and listed[0]["name"] == "heat" and listed[0]["platform"].startswith("windows"),
              "ckpt.exe list --json does not show the Windows program %s: %s %s" % (pid, p.stdout, p.stderr))
        p = run(win.cmd("ckpt", "checkpoint", pid, "--json"), cwd=work, env_extra={"CKPT_RUNTIME_DIR": wine_path(rt)})
        if p.returncode != 0 and proc.poll() is not None:
            fail("ckpt.exe checkpoint: %s %s\nthe Windows program exited with status %d: %s" %
                 (p.stdout, p.stderr, proc.returncode, proc.stderr.read()[-3000:]))
        check(p.returncode == 0, "ckpt.exe checkpoint: %s %s (the Windows program still runs)" % (p.stdout, p.stderr))
        check(proc.poll() is None, "the program stopped after a plain checkpoint")
        p = run(win.cmd("ckpt", "checkpoint", pid, "--exit"), cwd=work,
                env_extra={"CKPT_RUNTIME_DIR": wine_path(rt)})
        check(p.returncode == 0, "ckpt.exe checkpoint --exit: %s %s" % (p.stdout, p.stderr))
        out, err = proc.communicate(timeout=120)
        check(proc.returncode == 75, "Windows program exit status %d: %s" % (proc.returncode, err))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    try:
        check(len(images(work)) == 2, "images: %s" % images(work))
        # Finish on Linux.
        p = run([os.path.join(BIN, "heat"), "--ckpt-resume", ".", "--ckpt-dir", "l", "--ckpt-quiet"], cwd=work,
                check=0, timeout=600)
        check(result_line(p.stdout) == ref, "Windows-checkpointed run finished on Linux differs")
        # Registrations (%TEMP%\\ckpt or CKPT_RUNTIME_DIR) and temporary files go
        # with the program on every exit: after `checkpoint --exit` above, after
        # --ckpt-stop-at, after a normal end (issue 10, point 8).
        check(os.listdir(rt) == [], "registration left after checkpoint --exit: %s" % os.listdir(rt))
        run(win.cmd("heat", 64, 200, "--ckpt-dir", "w2", "--ckpt-stop-at", 20), cwd=work, check=75,
            env_extra={"CKPT_RUNTIME_DIR": wine_path(rt)})
        check(os.listdir(rt) == [], "registration left after --ckpt-stop-at: %s" % os.listdir(rt))
        run(win.cmd("heat", "--ckpt-resume", "w2", "--ckpt-dir", "w2"), cwd=work, check=0,
            env_extra={"CKPT_RUNTIME_DIR": wine_path(rt)})
        check(os.listdir(rt) == [], "registration left after a normal end: %s" % os.listdir(rt))
        left = [f for f in os.listdir(work) + os.listdir(os.path.join(work, "w2")) if f.endswith(".tmp")]
        check(not left, "temporary files left: %s" % left)
        print("ok   windows: ckpt.exe checkpoint PID and --exit via named events; finished on Linux identically")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    windows_registration_held(win)


def windows_registration_held(win):
    """The program replaces its registration while another Windows process has it open, as
    `ckpt.exe checkpoint PID` does for moments while it polls. MoveFileEx then fails; the program
    must retry, or the command never sees the checkpoint and says the program "exited without
    writing a checkpoint" (hetero_windows failed so once)."""
    work = tempdir("winhold")
    rt = os.path.join(work, "rt")
    os.mkdir(rt)
    e = env(CKPT_RUNTIME_DIR=wine_path(rt))
    proc = subprocess.Popen(win.cmd("heat", "96", "100000000", "--ckpt-dir", "."), cwd=work, env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pid = None
        for _ in range(3000):
            regs = [f for f in os.listdir(rt) if f.endswith(".json")]
            if regs:
                pid = regs[0][:-5]
                break
            time.sleep(0.01)
        check(pid is not None, "the Windows program did not register")
        # ping's standard input is the registration: cmd holds it open for ~3 s.
        holder = subprocess.Popen(["wine", "cmd", "/c", "ping -n 4 127.0.0.1 < %s > NUL" %
                                   wine_path(os.path.join(rt, pid + ".json"))], cwd=work, env=e,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        p = run(win.cmd("ckpt", "checkpoint", pid, "--exit", "--timeout", "60"), cwd=work,
                env_extra={"CKPT_RUNTIME_DIR": wine_path(rt)})
        holder.wait(timeout=60)
        check(p.returncode == 0, "ckpt.exe checkpoint --exit with the registration held open: %s %s" %
              (p.stdout, p.stderr))
        out, err = proc.communicate(timeout=120)
        check(proc.returncode == 75, "Windows program exit status %d: %s" % (proc.returncode, err))
        check(len(images(work)) == 1, "images: %s" % images(work))
        print("ok   windows: a registration held open by a reader is still updated")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


def dists():
    """The distributions' hidden state (normal's cached value, the normal or
    gamma inside lognormal, poisson, ...) moves between platforms exactly: each
    platform resumes each platform's image and, before any draw, writes an
    image whose variables equal the original's. The draws themselves go
    through each C library's log/exp, so whole results are compared on the
    writer's platform only: there a resumed run equals the uninterrupted one."""
    plats = platforms()
    need(plats, ["linux-x86_64", "windows-x86_64", "linux-s390x"])
    args = ["300", "--ckpt-dir", ".", "--ckpt-quiet"]
    work = tempdir("dists")
    try:
        def values(img):
            j = json.loads(run([CKPT, "inspect", "--json", "--values", img], check=0).stdout)
            return {v["name"]: v["value"] for v in j["variables"]}

        def write(w):
            d = os.path.join(work, "from-" + w.name)
            os.mkdir(d)
            run(w.cmd("dists", *(args + ["--ckpt-stop-at", 101])), cwd=d, check=75)
            ref = result_line(run(w.cmd("dists", "300"), cwd=d, check=0).stdout)
            return newest_image(d), ref

        written = dict(zip([w.name for w in plats], pmap(write, plats)))

        def again(pair):
            w, r = pair
            d = os.path.join(work, "from-%s-on-%s" % (w.name, r.name))
            os.mkdir(d)
            src = os.path.relpath(written[w.name][0], d)
            run(r.cmd("dists", "--ckpt-resume", src, "--ckpt-dir", ".", "--ckpt-quiet", "--ckpt-stop-at", 1), cwd=d,
                check=75)
            return newest_image(d)

        pairs = [(w, r) for w in plats for r in plats]
        for (w, r), img in zip(pairs, pmap(again, pairs)):
            want, got = values(written[w.name][0]), values(img)
            check(want["normal"].startswith('"') and want["step"] == "100", "%s image: %s" % (w.name, want))
            for name in want:
                check(got.get(name) == want[name], "%s from %s, rewritten on %s: %s\n  %s\nnot\n  %s" %
                      (name, w.name, r.name, img, got.get(name), want[name]))

        def finish(w):
            d = os.path.join(work, "from-" + w.name)
            return result_line(run(w.cmd("dists", "--ckpt-resume", ".", "--ckpt-dir", "end", "--ckpt-quiet"), cwd=d,
                                   check=0).stdout)

        for w, got in zip(plats, pmap(finish, plats)):
            check(got == written[w.name][1], "dists resumed on %s gives\n  %s\nnot\n  %s" % (w.name, got,
                                                                                               written[w.name][1]))
        print("ok   dists: distribution state identical across %d x %d platforms; resumed runs bit-identical" %
              (len(plats), len(plats)))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def evolve():
    """ledger_v1 checkpoints at its 120th safepoint (119 steps done); ledger_v2,
    whose structs changed shape, resumes that image on every platform. What it
    finds must be v1's state after 119 steps, converted as its Upgrade hooks
    say; what it computes from there must be identical everywhere."""
    plats = platforms()
    need(plats, ["linux-x86_64", "windows-x86_64", "linux-s390x", "linux-aarch64"])
    P = by_name(plats)
    stop = 120
    v1 = run(P["linux-x86_64"].cmd("ledger_v1", stop - 1), check=0).stdout
    want = []
    for m in re.finditer(r"^state (\S+) holder=(.*) balance=(-?\d+) flags=(\d+) entries=(\d+) sum=(-?\d+)$", v1,
                         re.M):
        want.append("upgraded %s owner=%s cents=%d overdrafts=%d rate=0.02 entries=%s sum=%d" %
                    (m[1], m[2], int(m[3]) * 100, int(m[4]) & 1, m[5], int(m[6]) * 100))
    check(len(want) == 3, "ledger_v1 printed no state:\n%s" % v1)
    work = tempdir("evolve")
    try:
        results = {}
        for src in ("linux-s390x", "windows-x86_64"):
            d = os.path.join(work, "v1-" + src)
            os.mkdir(d)
            run(P[src].cmd("ledger_v1", 300, "--ckpt-dir", ".", "--ckpt-quiet", "--ckpt-stop-at", stop), cwd=d,
                check=75)

            def resume(r, d=d):
                t = os.path.join(d, "to-" + r.name)
                os.mkdir(t)
                return run(r.cmd("ledger_v2", "--ckpt-resume", os.path.relpath(newest_image(d), t), "--ckpt-dir",
                                 ".", "--ckpt-quiet"), cwd=t)

            for r, p in zip(plats, pmap(resume, plats)):
                check(p.returncode == 0, "ledger_v2 on %s could not resume ledger_v1's image from %s: exit %d\n%s%s" %
                      (r.name, src, p.returncode, p.stdout, p.stderr))
                got = [l for l in p.stdout.splitlines() if l.startswith("upgraded ")]
                check(got == want, "ledger_v2 on %s found in %s's v1 image\n  %s\nnot\n  %s" %
                      (r.name, src, "\n  ".join(got), "\n  ".join(want)))
                results["%s -> %s" % (src, r.name)] = result_line(p.stdout)
        check(len(set(results.values())) == 1, "ledger_v2 results differ:\n%s" %
              "\n".join("  %s: %s" % kv for kv in sorted(results.items())))
        # Version 1 cannot read version 2's state: a clear refusal, nothing run.
        d = os.path.join(work, "v2")
        os.mkdir(d)
        run(P["linux-x86_64"].cmd("ledger_v2", 300, "--ckpt-dir", ".", "--ckpt-quiet", "--ckpt-stop-at", 30), cwd=d,
            check=75)
        p = run(P["windows-x86_64"].cmd("ledger_v1", "--ckpt-resume", ".", "--ckpt-dir", "."), cwd=d)
        check(p.returncode != 0 and "Account is version 2 in the image, the program's is version 0" in p.stderr
              and "result" not in p.stdout, "ledger_v1 on Windows given a version 2 image: exit %d\n%s%s" %
              (p.returncode, p.stdout, p.stderr))
        print("ok   evolve: ledger_v1 images from s390x and Windows resume in ledger_v2 on %d platforms, "
              "converted as declared, identical results; v1 refuses v2's image" % len(plats))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    {"chain": chain, "matrix": matrix, "codecs": codecs, "windows": windows, "dists": dists,
     "evolve": evolve}[sys.argv[1]]()
