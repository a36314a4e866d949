"""Helpers for ckpt's end-to-end tests: where the binaries are, how to run a
build for another platform (natively, under Wine, under qemu-user), and small
assertions. Standard library only."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

SKIP = 77  # ctest SKIP_RETURN_CODE

ROOT = os.environ.get("CKPT_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN = os.environ.get("CKPT_BIN_DIR", os.path.join(ROOT, "build", "bin"))
CROSS_ROOT = os.environ.get("CKPT_CROSS_ROOT", os.path.join(ROOT, "build"))
# Set by the sanitizer build's ctest: its programs run ~9x slower.
SANITIZED = os.environ.get("CKPT_TEST_SANITIZED") == "1"
# `heat` arguments for a run long enough to be caught mid-run (~0.8 s in the
# release build; about twice that under the sanitizers).
HEAT_LONG = ["96", "40000" if SANITIZED else "150000"]


class Platform:
    """A build of the project for one OS/CPU and how to run its programs."""

    def __init__(self, name, bindir, runner, exe=""):
        self.name, self.bindir, self.runner, self.exe = name, bindir, runner, exe

    def path(self, prog):
        return os.path.join(self.bindir, prog + self.exe)

    def available(self, prog="heat"):
        if not os.path.exists(self.path(prog)):
            return False
        return all(shutil.which(r) for r in self.runner[:1])

    def cmd(self, prog, *args):
        return list(self.runner) + [self.path(prog)] + [str(a) for a in args]

    def __repr__(self):
        return self.name


_wine_keeper = None


def start_wineserver():
    """Starts a persistent wineserver and Wine's session services, detached
    from our pipes, and keeps one Windows process (`cmd /c pause`, reading a
    pipe only this process holds) running until this test exits. Without it,
    every moment no Windows program runs lets Wine shut its services down; the
    next program starts them again, holding its captured output open for a
    minute (the first `run` under Wine took 63 s, not 1), and a program started
    while they shut down can fail without a word."""
    global _wine_keeper
    if _wine_keeper is not None or not shutil.which("wineserver"):
        return
    subprocess.run(["wineserver", "-p60"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)
    _wine_keeper = subprocess.Popen(["wine", "cmd", "/c", "pause"], stdin=subprocess.PIPE,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env(),
                                    start_new_session=True)
    # Returns once the prefix is ready (made on first use) and the services run.
    subprocess.run(["wine", "cmd", "/c", "exit"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env=env(), timeout=300, check=False)


def native_or(bindir, runner):
    """[] if this kernel runs the programs in `bindir` itself, else `runner`.
    32-bit x86 builds run natively where the kernel has IA-32 emulation; some
    hypervisors (the PVM test VM of 2026-11-30) refuse them with ENOEXEC."""
    probe = os.path.join(bindir, "heat")
    if not os.path.exists(probe):
        return []
    try:
        subprocess.run([probe, "--version"], capture_output=True, timeout=60, check=False)
        return []
    except OSError:
        return runner


def platforms():
    """Every platform this checkout can run: native first."""
    out = [Platform("linux-x86_64", BIN, [])]
    i686 = os.path.join(CROSS_ROOT, "linux-i686", "bin")
    cross = [
        ("windows-x86_64", "windows-x64", ["wine"], ".exe"),
        ("linux-s390x", "linux-s390x", ["qemu-s390x"], ""),
        ("linux-aarch64", "linux-aarch64", ["qemu-aarch64"], ""),
        ("linux-i686", "linux-i686", native_or(i686, ["qemu-i386"]), ""),
    ]
    for name, preset, runner, exe in cross:
        p = Platform(name, os.path.join(CROSS_ROOT, preset, "bin"), runner, exe)
        if p.available():
            out.append(p)
            if runner == ["wine"]:
                start_wineserver()
    return out


def env(**extra):
    e = dict(os.environ)
    e.setdefault("WINEDEBUG", "-all")
    e.update({k: str(v) for k, v in extra.items()})
    return e


def run(cmd, timeout=300, check=None, env_extra=None, cwd=None, input=None):
    """Runs cmd; returns CompletedProcess with text stdout/stderr."""
    cmd = [str(c) for c in cmd]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env(**(env_extra or {})),
                       cwd=cwd, input=input)
    if check is not None and p.returncode != check:
        fail("%s exited %d (wanted %d)\nstdout:\n%s\nstderr:\n%s" % (" ".join(map(str, cmd)), p.returncode, check,
                                                                      p.stdout, p.stderr))
    return p


def result_line(text):
    lines = [l for l in text.splitlines() if l.startswith("result ")]
    if len(lines) != 1:
        fail("expected one 'result' line, got:\n" + text)
    return lines[0]


def result_line_or_none(text):
    """The one 'result' line of text, or None if there is none."""
    lines = [l for l in text.splitlines() if l.startswith("result ")]
    return lines[0] if len(lines) == 1 else None


def wait_for(pred, what, timeout=60.0, interval=0.02):
    """Polls pred() until it returns a true value (returned); fails the test after `timeout` s."""
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    fail("timed out waiting for " + what)


def run_tests(namespace, only=None):
    """Runs every function test_NAME(work) of a test script (those named in `only`, if any), each with a
    fresh temporary directory removed afterwards: the scripts' `if __name__ == "__main__"` body."""
    tests = [(n, f) for n, f in sorted(namespace.items()) if n.startswith("test_") and callable(f)]
    for name, f in tests:
        if only and name not in only:
            continue
        work = tempdir(name)
        try:
            f(work)
            print("ok   " + name)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def dump_and_restore(ckpt, pid, img, what, on_fail=None, first=None):
    """One engine cycle: `ckpt dump PID -D IMG` (the process ends) and `ckpt restore -D IMG --detach`;
    returns the restored process's PID. `first`: the original process's Popen, reaped after the dump.
    A failure goes to on_fail (default fail) with `what` ("restore 2") in its message."""
    on_fail = on_fail or fail
    r = subprocess.run([ckpt, "dump", str(pid), "-D", img], capture_output=True, text=True)
    if r.returncode != 0:
        on_fail("dump before %s: %s" % (what, r.stderr))
    if first is not None:
        first.wait()
    r = subprocess.run([ckpt, "restore", "-D", img, "--detach"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        on_fail("%s: %s" % (what, r.stderr))
    return int(r.stdout)


def spool_entries(path):
    """A migration spool's entries (m-ID directories), outcome records aside."""
    return sorted(f for f in os.listdir(path) if f != "outcomes")


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def crashed(p):
    """True if a process died of a signal or a sanitizer report."""
    return p.returncode < 0 or p.returncode >= 128 or "Sanitizer" in p.stderr or "runtime error" in p.stderr


def tempdir(tag):
    return tempfile.mkdtemp(prefix="ckpt-%s-" % tag)


def images(d):
    return sorted(f for f in os.listdir(d) if re.match(r".*\.\d{6}\.ckpt$", f))


def evict(path):
    """Drops the file's pages from the page cache (synced first): the next read comes from the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def newest_image(d):
    imgs = images(d)
    check(imgs, "no image in " + d)
    return os.path.join(d, imgs[-1])


def wine_path(p):
    """A Unix path as Wine's Z: drive sees it."""
    return "Z:" + os.path.abspath(p).replace("/", "\\")


# An asyncio TCP server (python3, standard library) that answers each line
# "N" of a connection with "N SUM", SUM the running sum of that connection's
# numbers: its state lives in the process. argv: address, port. It prints
# "listening" once it listens. Used by the engine's and the migration's TCP
# tests (tests/engine/run_tcp.py, tests/migrate/test_tcp_move.py).
SUM_SERVER = r'''
import asyncio, sys
async def serve(reader, writer):
    total = 0
    while True:
        line = await reader.readline()
        if not line:
            break
        total += int(line)
        writer.write(b"%d %d\n" % (int(line), total))
        await writer.drain()
    writer.close()
async def main():
    srv = await asyncio.start_server(serve, sys.argv[1], int(sys.argv[2]))
    print("listening", flush=True)
    async with srv:
        await srv.serve_forever()
asyncio.run(main())
'''
