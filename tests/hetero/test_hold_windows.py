"""The library side of `ckpt migrate` (issue 11) with the Windows build under
Wine: `ckpt.exe checkpoint PID --hold` holds a Windows program through the
named events, `ckpt.exe release PID --exit` ends it with status 75 (its held
image finishes on Linux with the uninterrupted result), a killed requester
lets it continue, and a Windows program resumed with CKPT_HOLD_PORT/TOKEN
reports over Winsock and runs on only after 'g' (exit 76 otherwise)."""
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
from ckpttest import *  # noqa
from test_hold import HandoffServer, TOKEN, wait_for  # noqa

ARGS = ["96", "200000"]


def registration(rt):
    for f in os.listdir(rt):
        if f.endswith(".json"):
            try:
                with open(os.path.join(rt, f)) as fh:
                    return json.load(fh)
            except (OSError, ValueError):
                return None
    return None


def start_heat(win, work, rt):
    proc = subprocess.Popen(win.cmd("heat", *(ARGS + ["--ckpt-dir", ".", "--ckpt-keep", "10"])), cwd=work,
                            env=env(CKPT_RUNTIME_DIR=wine_path(rt)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_for(lambda: registration(rt) is not None, "the Windows program's registration", timeout=120)
    return proc, str(registration(rt)["pid"])


def start_hold(win, work, rt, pid):
    c = subprocess.Popen(win.cmd("ckpt", "checkpoint", pid, "--hold", "--json"), cwd=work,
                         env=env(CKPT_RUNTIME_DIR=wine_path(rt)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    lines = []
    while True:
        line = c.stdout.readline()
        if not line:
            out, err = c.communicate(timeout=120)
            fail("ckpt.exe checkpoint --hold ended (%s) without an image: %s %s" % (c.returncode, lines, err))
        lines.append(line)
        if line.rstrip().startswith("}"):
            break
    return c, json.loads("".join(lines))


def stop(*procs):
    for p in procs:
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()


def hold_exit(win, ref):
    work = tempdir("winhold")
    rt = os.path.join(work, "rt")
    os.mkdir(rt)
    proc = holder = None
    try:
        proc, pid = start_heat(win, work, rt)
        holder, j = start_hold(win, work, rt, pid)
        check(j["held"] is True and j["program"] == "heat", "hold answer: %s" % j)
        before = images(work)
        time.sleep(1.0)
        check(proc.poll() is None and images(work) == before and registration(rt)["held"] is True,
              "the held Windows program moved on: %s -> %s" % (before, images(work)))
        p = run(win.cmd("ckpt", "release", pid, "--exit"), cwd=work, env_extra={"CKPT_RUNTIME_DIR": wine_path(rt)})
        check(p.returncode == 0, "ckpt.exe release --exit: %s %s" % (p.stdout, p.stderr))
        out, err = proc.communicate(timeout=120)
        check(proc.returncode == 75, "exit status %d after release --exit: %s" % (proc.returncode, err))
        holder.communicate(timeout=120)
        check(holder.returncode == 0, "ckpt.exe checkpoint --hold exit status %d" % holder.returncode)
        check(images(work) == before, "images after release --exit: %s" % images(work))
        check(os.listdir(rt) == [], "registration left: %s" % os.listdir(rt))
        # The held image finishes on Linux with the uninterrupted result.
        img = os.path.join(work, images(work)[-1])
        p = run([os.path.join(BIN, "heat"), "--ckpt-resume", img, "--ckpt-dir", "l", "--ckpt-quiet"], cwd=work,
                check=0, timeout=600)
        check(result_line(p.stdout) == ref, "held Windows image finished on Linux differs")
        print("ok   windows hold: checkpoint --hold, release --exit (75), finished on Linux identically")
        # A killed requester: the program notices (the requester's PID is in a
        # named mapping) and continues by itself.
        proc, pid = start_heat(win, work, rt)
        holder, j = start_hold(win, work, rt, pid)
        holder.kill()
        holder.wait()
        wait_for(lambda: (registration(rt) or {}).get("held") is False, "the Windows program to continue",
                 timeout=60)
        out, err = proc.communicate(timeout=600)
        check(proc.returncode == 0 and "ended without a decision" in err, "%d %s" % (proc.returncode, err))
        check(result_line(out) == ref, "Windows run after an abandoned hold differs")
        print("ok   windows hold: a killed requester releases the program")
    finally:
        stop(proc, holder)
        shutil.rmtree(work, ignore_errors=True)


def handoff(win, ref):
    work = tempdir("winhandoff")
    try:
        run(win.cmd("heat", *(ARGS + ["--ckpt-dir", ".", "--ckpt-stop-at", 5000])), cwd=work, check=75)
        img = wine_path(newest_image(work))
        for answer, status in ((b"g", 0), (None, 76)):
            srv = HandoffServer(answer)
            d = "g" if answer else "n"
            p = run(win.cmd("heat", "--ckpt-resume", img, "--ckpt-dir", d), cwd=work, timeout=600,
                    env_extra={"CKPT_HOLD_PORT": srv.port, "CKPT_HOLD_TOKEN": TOKEN})
            srv.join()
            line = (srv.line or "").split(" ")
            check(len(line) == 3 and line[:2] == ["CKPTHOLD", TOKEN] and line[2].strip().isdigit(),
                  "report line: %r" % srv.line)
            check(p.returncode == status, "answer %r: exit status %d: %s" % (answer, p.returncode, p.stderr))
            if answer:
                check(result_line(p.stdout) == ref, "Windows run after 'g' differs")
            else:
                check(p.stdout == "" and "migration handoff aborted" in p.stderr, p.stdout + p.stderr)
                check(not os.path.isdir(os.path.join(work, d)) or images(os.path.join(work, d)) == [],
                      "an image was written without the go-ahead")
        print("ok   windows handoff: reports over Winsock; 'g' runs on identically, no 'g' exits 76")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    plats = platforms()
    if "windows-x86_64" not in {p.name for p in plats}:
        print("SKIP: the Windows build is missing (run `make cross`)")
        sys.exit(SKIP)
    win = [p for p in plats if p.name == "windows-x86_64"][0]
    ref = result_line(run(plats[0].cmd("heat", *ARGS), check=0, timeout=600).stdout)
    hold_exit(win, ref)
    handoff(win, ref)


if __name__ == "__main__":
    main()
