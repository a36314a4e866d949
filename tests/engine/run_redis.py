#!/usr/bin/env python3
"""redis-server (Debian's, unmodified) across dumps and restores, in a
network namespace of its own: 100,000 keys; ten dump-and-restore cycles,
each followed by checks that DBSIZE and a sample of values are identical,
that a client connection opened before the first dump still answers (its
PING and GETs on the same socket), and that new clients connect; then three
--leave-running dumps while a client runs INCR and GET/SET pairs whose
every reply is checked.   run_redis.py CKPT
"""
import faulthandler
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time

CKPT = sys.argv[1]
if os.environ.get("CKPT_REDIS_NETNS") != "1":
    os.execvpe("unshare", ["unshare", "-n", sys.executable] + sys.argv, dict(os.environ, CKPT_REDIS_NETNS="1"))
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
faulthandler.dump_traceback_later(280, exit=True)  # a hang shows where

PORT = 7379
KEYS = 100000
W = tempfile.mkdtemp(prefix="ckpt-redis.")


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def resp(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class Conn:
    """One RESP connection: send commands, read replies."""

    def __init__(self):
        self.s = socket.create_connection(("127.0.0.1", PORT), timeout=60)
        self.f = self.s.makefile("rb")

    def reply(self):
        line = self.f.readline()
        if not line:
            raise RuntimeError("connection closed by redis")
        kind, rest = line[:1], line[1:-2]
        if kind in (b"+", b"-"):
            return rest.decode() if kind == b"+" else RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)[:-2]
            return data.decode()
        raise RuntimeError("unexpected reply %r" % line)

    def call(self, *args):
        self.s.sendall(resp(*args))
        return self.reply()


def value(i):
    return "value-%d-%x" % (i, (i * 2654435761) & 0xFFFFFFFF)


def load():
    c = Conn()
    batch = 2000
    for start in range(0, KEYS, batch):
        c.s.sendall(b"".join(resp("SET", "key:%d" % i, value(i)) for i in range(start, min(KEYS, start + batch))))
        for _ in range(start, min(KEYS, start + batch)):
            if c.reply() != "OK":
                fail("SET failed while loading")
    c.s.close()


def check_data(c, what):
    n = c.call("DBSIZE")
    if n < KEYS:
        fail("%s: DBSIZE %s, wanted at least %d" % (what, n, KEYS))
    for i in random.Random(n).sample(range(KEYS), 200):
        v = c.call("GET", "key:%d" % i)
        if v != value(i):
            fail("%s: key:%d is %r, wanted %r" % (what, i, v, value(i)))


def new_client(what):
    out = subprocess.run(["redis-cli", "-p", str(PORT), "GET", "key:4242"], capture_output=True, text=True,
                         timeout=30).stdout.strip()
    if out != value(4242):
        fail("%s: a new redis-cli got %r" % (what, out))


def locks_left():
    out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "ckpt_" in line]


class Load:
    """INCR on a counter and SET/GET pairs, every reply checked."""

    def __init__(self):
        self.c = Conn()
        self.n = int(self.c.call("GET", "counter") or 0)
        self.error = None
        self.stop = False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        try:
            while not self.stop:
                self.n += 1
                got = self.c.call("INCR", "counter")
                if got != self.n:
                    raise RuntimeError("INCR %d gave %r" % (self.n, got))
                self.c.s.sendall(resp("SET", "load", self.n) + resp("GET", "load"))
                ok, back = self.c.reply(), self.c.reply()
                if ok != "OK" or back != str(self.n):
                    raise RuntimeError("SET/GET %d gave %r %r" % (self.n, ok, back))
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            self.error = "%s: %s" % (type(e).__name__, e)

    def more(self, k, what):
        target = self.n + k
        end = time.time() + 60
        while self.n < target and self.error is None and time.time() < end:
            time.sleep(0.01)
        if self.error is not None or self.n < target:
            fail("%s: %s" % (what, self.error or "stuck at request %d" % self.n))


def main():
    if subprocess.run(["which", "redis-server"], capture_output=True).returncode != 0:
        print("SKIP: redis-server not installed")
        sys.exit(77)
    out = open(os.path.join(W, "redis.out"), "w")
    p = subprocess.Popen(["redis-server", "--port", str(PORT), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--dir", W, "--daemonize", "no"], stdout=out, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, close_fds=True)
    for _ in range(1500):
        try:
            Conn().s.close()
            break
        except OSError:
            time.sleep(0.02)
    load()
    old = Conn()  # opened before the first dump: must still answer after every restore
    check_data(old, "before any dump")
    pid, img = p.pid, os.path.join(W, "img")
    for it in range(1, 11):
        r = subprocess.run([CKPT, "dump", str(pid), "-D", img], capture_output=True, text=True)
        if r.returncode != 0:
            fail("dump %d: %s" % (it, r.stderr))
        if it == 1:
            p.wait()
        r = subprocess.run([CKPT, "restore", "-D", img, "--detach"], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            fail("restore %d: %s" % (it, r.stderr))
        pid = int(r.stdout)
        if old.call("PING") != "PONG":
            fail("restore %d: the old connection does not answer PING" % it)
        check_data(old, "restore %d, the connection opened before the first dump" % it)
        new_client("restore %d" % it)
        if locks_left():
            fail("restore %d left the network lock: %s" % (it, locks_left()))
    print("ok   10 dump/restore cycles: DBSIZE and 200 values each time, the old connection answers", flush=True)
    load_ = Load()
    load_.more(500, "before the live dumps")
    for it in range(1, 4):
        r = subprocess.run([CKPT, "dump", str(pid), "-D", img + "-live", "--leave-running"], capture_output=True,
                           text=True)
        if r.returncode != 0:
            fail("--leave-running dump %d: %s" % (it, r.stderr))
        load_.more(500, "after --leave-running dump %d" % it)
    load_.stop = True
    print("ok   3 --leave-running dumps under load: %d checked INCR/SET/GET rounds" % load_.n, flush=True)
    r = subprocess.run([CKPT, "restore", "-D", img + "-live", "--detach"], capture_output=True, text=True)
    if r.returncode == 0:
        fail("the live dump's image restored while the server still holds its port: %s" % r.stdout)
    if locks_left():
        fail("a failed restore left a network lock it made: %s (the running server's clients stall)" % locks_left())
    load_ = Load()
    load_.more(200, "after the failed restore")
    load_.stop = True
    subprocess.run(["kill", "-9", str(pid)])
    print("PASS: redis-server with %d keys, 10 restores, 3 live dumps" % KEYS)


try:
    main()
finally:
    subprocess.run(["pkill", "-9", "-f", "redis-server.*%d" % PORT])
    subprocess.run(["rm", "-rf", W])
