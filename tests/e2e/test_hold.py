"""End-to-end: the library side of `ckpt migrate` (issue 11).

Source side: `ckpt checkpoint PID --hold` writes the image and leaves the
program waiting inside that safepoint; `ckpt release PID` lets it continue,
`ckpt release PID --exit` ends it with status 75 and no further image; a
requester that dies without deciding lets it continue by itself.
Target side: a program started with CKPT_HOLD_PORT/CKPT_HOLD_TOKEN reports to
that loopback port at its first safepoint and runs on only after 'g'; anything
else ends it with status 76 before any of its own work.
Every finished run is compared with the uninterrupted run's result."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from ckpttest import *  # noqa

CKPT = os.path.join(BIN, "ckpt")
HEAT = os.path.join(BIN, "heat")
ARGS = HEAT_LONG
_REF = []


def reference():
    """The uninterrupted run's result line (computed once)."""
    if not _REF:
        _REF.append(result_line(run([HEAT] + ARGS, check=0, timeout=600).stdout))
    return _REF[0]



def registration(rt, pid):
    try:
        with open(os.path.join(rt, "%d.json" % pid)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def start_heat(work, rt, extra=()):
    e = env(CKPT_RUNTIME_DIR=rt)
    proc = subprocess.Popen([HEAT] + ARGS + ["--ckpt-dir", work, "--ckpt-keep", "10"] + list(extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=e)
    wait_for(lambda: registration(rt, proc.pid) is not None, "the registration of heat")
    return proc


def start_hold(pid, rt):
    """`ckpt checkpoint PID --hold --json`: returns the command (still running) and its JSON."""
    c = subprocess.Popen([CKPT, "checkpoint", str(pid), "--hold", "--json"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env(CKPT_RUNTIME_DIR=rt))
    lines = []
    while True:  # the JSON object is printed (and flushed) before the command waits
        line = c.stdout.readline()
        if not line:
            out, err = c.communicate(timeout=60)
            fail("ckpt checkpoint --hold ended (%s) without an image: %s %s" % (c.returncode, lines, err))
        lines.append(line)
        if line.startswith("}"):
            break
    return c, json.loads("".join(lines))


def step_of(img):
    j = json.loads(run([CKPT, "inspect", "--json", "--values", img], check=0).stdout)
    return int([v for v in j["variables"] if v["name"] == "step"][0]["value"])


def check_frozen(proc, rt, work):
    """The held program makes no progress: no new image, and a checkpoint
    request (`ckpt checkpoint --no-wait`) stays unserved while it holds."""
    gen = registration(rt, proc.pid)["generation"]
    before = images(work)
    run([CKPT, "checkpoint", proc.pid, "--no-wait"], check=0, env_extra={"CKPT_RUNTIME_DIR": rt})
    time.sleep(1.0)
    check(proc.poll() is None, "the held program ended")
    check(images(work) == before, "the held program wrote images: %s -> %s" % (before, images(work)))
    reg = registration(rt, proc.pid)
    check(reg["held"] is True and reg["generation"] == gen, "registration while held: %s" % reg)


def test_hold_release(work):
    ref = reference()
    rt = os.path.join(work, "rt")
    proc = start_heat(work, rt)
    holder = None
    try:
        holder, j = start_hold(proc.pid, rt)
        check(j["held"] is True and os.path.exists(j["image"]), "hold answer: %s" % j)
        check(j["program"] == "heat" and j["cwd"] == os.getcwd(), "program/cwd: %s" % j)
        reg = registration(rt, proc.pid)
        check(reg["held"] is True and reg["last_image"] == j["image"], "registration: %s" % reg)
        # Held: the image's step is where the program is, and stays.
        held_step = step_of(j["image"])
        check_frozen(proc, rt, work)
        p = run([CKPT, "release", proc.pid], check=0, env_extra={"CKPT_RUNTIME_DIR": rt})
        check("continues" in p.stdout, p.stdout)
        holder.wait(timeout=60)
        check(holder.returncode == 0, "ckpt checkpoint --hold exit status %d after the release" % holder.returncode)
        check(registration(rt, proc.pid)["held"] is False, "still held after the release")
        # The request sent while it held is served now.
        wait_for(lambda: len(images(work)) == 2, "the checkpoint requested during the hold")
        # It runs on: a plain checkpoint now is further along.
        p = run([CKPT, "checkpoint", proc.pid], check=0, env_extra={"CKPT_RUNTIME_DIR": rt})
        check(step_of(p.stdout.strip()) > held_step, "no progress after the release")
        out, err = proc.communicate(timeout=600)
        check(proc.returncode == 0, "exit status %d: %s" % (proc.returncode, err))
        check(result_line(out) == ref, "released run differs:\n%s\n%s" % (result_line(out), ref))
    finally:
        for p in (proc, holder):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    # The held image resumes to the same result.
    p = run([HEAT, "--ckpt-resume", j["image"], "--ckpt-dir", os.path.join(work, "r")], check=0, timeout=600)
    check(result_line(p.stdout) == ref, "resume of the held image differs")


def test_hold_exit(work):
    ref = reference()
    rt = os.path.join(work, "rt")
    proc = start_heat(work, rt)
    holder = None
    try:
        p = run([CKPT, "release", proc.pid], check=1, env_extra={"CKPT_RUNTIME_DIR": rt})
        check("is not held" in p.stderr, "release of a running program: " + p.stderr)
        holder, j = start_hold(proc.pid, rt)
        check_frozen(proc, rt, work)
        p = run([CKPT, "release", proc.pid, "--exit"], check=0, env_extra={"CKPT_RUNTIME_DIR": rt})
        out, err = proc.communicate(timeout=60)
        check(proc.returncode == 75, "exit status %d after release --exit: %s" % (proc.returncode, err))
        check(out == "", "output after the hold: " + out)
        holder.wait(timeout=60)
        check(holder.returncode == 0, "ckpt checkpoint --hold exit status %d" % holder.returncode)
        # Not even the checkpoint requested during the hold was written.
        check(images(work) == [os.path.basename(j["image"])], "images: %s" % images(work))
        check(not os.path.exists(os.path.join(rt, "%d.json" % proc.pid)), "registration left behind")
    finally:
        for p in (proc, holder):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    p = run([CKPT, "resume", j["image"]], check=0, timeout=600)
    check(result_line(p.stdout) == ref, "resume after release --exit differs")


def test_requester_gone(work):
    ref = reference()
    rt = os.path.join(work, "rt")
    for how in ("kill", "term"):
        proc = start_heat(os.path.join(work, how), rt)
        try:
            holder, j = start_hold(proc.pid, rt)
            check(registration(rt, proc.pid)["held"] is True, "not held")
            if how == "kill":
                # Killed without a word: the program notices and continues by itself.
                holder.kill()
                holder.wait()
            else:
                # Interrupted: the command releases the program and exits 128+15.
                holder.send_signal(signal.SIGTERM)
                _, herr = holder.communicate(timeout=60)
                check(holder.returncode == 143 and "released" in herr, "SIGTERM: %d %s" % (holder.returncode, herr))
            wait_for(lambda: (registration(rt, proc.pid) or {}).get("held") is False, "the program to continue",
                     timeout=30)
            out, err = proc.communicate(timeout=600)
            check(proc.returncode == 0, "exit status %d: %s" % (proc.returncode, err))
            if how == "kill":
                check("ended without a decision; continuing" in err and "pid %d" % holder.pid in err,
                      "no message about the requester: " + err)
            check(result_line(out) == ref, "run after an abandoned hold differs")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_hold_timeout(work):
    # The backstop: CKPT_HOLD_TIMEOUT ends a hold whose requester lives on.
    rt = os.path.join(work, "rt")
    e = env(CKPT_RUNTIME_DIR=rt, CKPT_HOLD_TIMEOUT="1.5")
    proc = subprocess.Popen([HEAT] + ARGS + ["--ckpt-dir", work], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=e)
    try:
        wait_for(lambda: registration(rt, proc.pid) is not None, "the registration")
        holder, j = start_hold(proc.pid, rt)
        wait_for(lambda: (registration(rt, proc.pid) or {}).get("held") is False, "the hold timeout", timeout=60)
        holder.wait(timeout=60)
        check(holder.returncode == 0, "holder: %d" % holder.returncode)
        out, err = proc.communicate(timeout=600)
        check(proc.returncode == 0 and "hold timeout" in err, "%d %s" % (proc.returncode, err))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    p = run([HEAT, "1", "--ckpt-quiet"], env_extra={"CKPT_HOLD_TIMEOUT": "soon"})
    check(p.returncode == 2 and "CKPT_HOLD_TIMEOUT" in p.stderr, "bad CKPT_HOLD_TIMEOUT: %d %s" % (p.returncode,
                                                                                                  p.stderr))


class HandoffServer:
    """Listens on a loopback port; accepts one connection, reads the report
    line and answers with `answer` (None: close without a byte)."""

    def __init__(self, answer):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(120)
        self.port = self.sock.getsockname()[1]
        self.answer, self.line, self.error = answer, None, None
        self.thread = threading.Thread(target=self.serve)
        self.thread.start()

    def serve(self):
        try:
            c, _ = self.sock.accept()
            data = b""
            while not data.endswith(b"\n"):
                b = c.recv(1)
                if not b:
                    break
                data += b
            self.line = data.decode()
            time.sleep(0.5)  # the program must not run meanwhile
            if self.answer is not None:
                c.sendall(self.answer)
            c.close()
        except OSError as e:
            self.error = e
        finally:
            self.sock.close()

    def join(self):
        self.thread.join(timeout=120)


TOKEN = "0123456789abcdef0123456789ABCDEF"


def handoff_run(img, port, outdir, rt, extra_env=None, every=True):
    """heat resumed with the handoff variables; with `every`, a checkpoint due every millisecond (one written
    before the handoff's answer would show that the program ran on)."""
    e = {"CKPT_HOLD_PORT": port, "CKPT_HOLD_TOKEN": TOKEN, "CKPT_RUNTIME_DIR": rt}
    e.update(extra_env or {})
    extra = ["--ckpt-every", "0.001"] if every else []
    return subprocess.Popen([HEAT, "--ckpt-resume", img, "--ckpt-dir", outdir] + extra,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(**e))


def test_handoff(work):
    ref = reference()
    run([HEAT] + ARGS + ["--ckpt-dir", work, "--ckpt-stop-at", 5000], check=75)
    img = newest_image(work)
    rt = os.path.join(work, "rt")
    # (a) 'g': the resumed run goes on to the uninterrupted result; the
    # variables are gone from its environment (a child would not inherit them).
    srv = HandoffServer(b"g")
    proc = handoff_run(img, srv.port, os.path.join(work, "a"), rt, every=False)
    srv.join()
    out, err = proc.communicate(timeout=600)
    check(srv.line == "CKPTHOLD %s %d\n" % (TOKEN, proc.pid), "report line: %r" % srv.line)
    check(proc.returncode == 0, "exit status %d with 'g': %s" % (proc.returncode, err))
    check(result_line(out) == ref, "run after 'g' differs")
    # (b) closed without 'g', (c) another byte: exit 76, no image, no output,
    # no registration left; the line says why.
    for tag, answer in (("b", None), ("c", b"x")):
        srv = HandoffServer(answer)
        d = os.path.join(work, tag)
        proc = handoff_run(img, srv.port, d, rt)
        srv.join()
        out, err = proc.communicate(timeout=120)
        check(srv.line == "CKPTHOLD %s %d\n" % (TOKEN, proc.pid), "report line: %r" % srv.line)
        check(proc.returncode == 76, "%s: exit status %d: %s" % (tag, proc.returncode, err))
        check(out == "" and (not os.path.isdir(d) or images(d) == []), "%s: output %r, images" % (tag, out))
        check("migration handoff aborted" in err, "%s: stderr %s" % (tag, err))
        check(not os.path.exists(os.path.join(rt, "%d.json" % proc.pid)), "%s: registration left" % tag)
    # (d) nothing listens on the port: 76 at once.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # bound, never listening: connections are refused
    d = os.path.join(work, "d")
    proc = handoff_run(img, port, d, rt)
    out, err = proc.communicate(timeout=120)
    check(proc.returncode == 76 and out == "", "no listener: exit status %d %r %s" % (proc.returncode, out, err))
    check("cannot reach" in err, "no listener: " + err)
    # (e) a malformed token is refused the same way.
    p = run([HEAT, "--ckpt-resume", img, "--ckpt-dir", os.path.join(work, "e")],
            env_extra={"CKPT_HOLD_PORT": port, "CKPT_HOLD_TOKEN": "xyz"})
    check(p.returncode == 76 and "CKPT_HOLD_TOKEN" in p.stderr, "bad token: %d %s" % (p.returncode, p.stderr))
    # A fresh start waits for 'g' too.
    srv = HandoffServer(b"g")
    p = run([HEAT] + ARGS, check=0, timeout=600, env_extra={"CKPT_HOLD_PORT": srv.port, "CKPT_HOLD_TOKEN": TOKEN})
    srv.join()
    check(srv.line is not None and srv.line.startswith("CKPTHOLD " + TOKEN), "fresh start: %r" % srv.line)
    check(result_line(p.stdout) == ref, "fresh start after 'g' differs")


if __name__ == "__main__":
    run_tests(globals(), sys.argv[1:])
