#!/usr/bin/env python3
"""Established TCP connections across dumps and restores (docs/engine.md,
"TCP connections"): an unmodified python3 asyncio server keeps, per
connection, the running sum of the numbers a client sends; a client outside
the dumped process streams numbered requests with several in flight and
checks every reply ("N SUM") while the server is dumped and restored three
times (the kill-and-restore cycle, in a private network namespace), and
dumped with --leave-running under that load. After each restore the same
connection goes on with no gap and no repeated reply, a new client connects,
and no network lock (nftables table ckpt_*) is left behind.

With "worker": the dump's worker process is killed (by a test hook) after
the freeze, after collecting, while copying pages and after the image is in
place, in killing and --leave-running dumps, while the connection is in
repair mode and the network locked: `ckpt dump` puts the sockets back and
removes the lock, the same server process answers on the same connection
with no gap, and no lock is left.

With "close-wait": a connection its peer has half-closed (CLOSE_WAIT):
a client sends numbered lines and shuts its side down; the server (python3,
blocking sockets) is dumped and restored twice while the connection waits,
once with the lines and the end-of-file still queued (port 7071: the server
reads only after the restore) and once with everything read (port 7072:
the server only has to answer). After the restore the server reads the
same lines, then end-of-file, answers with their count and sum, and closes;
the client checks the answer and its own end-of-file.

With "peer-moved": the peer acts while the server's image waits and the
network lock drops its packets: it sends a last request and shuts its side
down. After the restore, its retransmissions reach the restored
connection: the server answers the request, sees end-of-file and closes;
the client gets the answer, then its own end-of-file.

With "fin-wait": the dumped process is the one that half-closed (FIN_WAIT2):
a python3 client sends numbered lines to this test's server and shuts its
side down, then waits for the answer. It is dumped and restored twice in
that state; then the server answers and closes, and the restored client
writes what it read: the count and sum of its lines, then end-of-file.

With "options": socket options survive: a python3 server sets keepalive
(with its idle time, interval and count), SO_LINGER, TCP_USER_TIMEOUT,
IP_TOS, SO_PRIORITY, SO_MARK, IP_TRANSPARENT, TCP_NOTSENT_LOWAT and
TCP_CONGESTION (reno) on an accepted connection, and keepalive, IP_TOS,
SO_PRIORITY, IP_FREEBIND, TCP_FASTOPEN and TCP_DEFER_ACCEPT on its
listening socket, and reports every value as getsockopt shows it; after two
restores the report is the same, on the same connection. Before that, a
byte of urgent data (MSG_OOB) the server has not read makes the dump
refuse, naming it, and the server runs on untouched; once it has read the
byte the dump goes through.

  run_tcp.py CKPT [worker|close-wait|peer-moved|fin-wait|options]
"""
import faulthandler
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import ckpttest  # noqa: E402

CKPT = sys.argv[1]
MODE = sys.argv[2] if len(sys.argv) > 2 else "restore"
if os.environ.get("CKPT_TCP_NETNS") != "1":
    # A network namespace of our own: only the addresses this test makes.
    os.execvpe("unshare", ["unshare", "-n", sys.executable] + sys.argv,
               dict(os.environ, CKPT_TCP_NETNS="1"))
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
faulthandler.dump_traceback_later(240, exit=True)  # a hang shows where


W = tempfile.mkdtemp(prefix="ckpt-tcp.")
server_pid = [None]  # the server as it runs now (restored: another process of ours, detached)
failures = []


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def locks_left():
    out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    return [l for l in out.splitlines() if "ckpt_" in l]


class Client:
    """Streams 1, 2, 3, ... with up to `window` requests in flight; checks each reply."""

    def __init__(self, window=8):
        self.s = socket.create_connection(("127.0.0.1", 7070), timeout=60)
        self.window = window
        self.sent = 0
        self.got = 0
        self.total = 0
        self.error = None
        self.stop = False
        self.cv = threading.Condition()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        self.buf = buf = b""
        try:
            while not self.stop:
                while self.sent - self.got < self.window:
                    self.sent += 1
                    self.s.sendall(b"%d\n" % self.sent)
                while b"\n" not in buf:
                    chunk = self.s.recv(65536)
                    if not chunk:
                        raise RuntimeError("the server closed the connection after %d replies" % self.got)
                    buf += chunk
                line, buf = buf.split(b"\n", 1)
                n, s = map(int, line.split())
                want = self.got + 1
                if n != want or s != self.total + want:
                    raise RuntimeError("reply %r, wanted %d %d" % (line, want, self.total + want))
                with self.cv:
                    self.got = want
                    self.total += want
                    self.buf = buf  # what a reader taking over after `stop` starts from
                    self.cv.notify_all()
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            with self.cv:
                self.error = "%s: %s" % (type(e).__name__, e)
                self.cv.notify_all()

    def wait_more(self, n, what):
        with self.cv:
            target = self.got + n
            end = time.time() + 60
            while self.got < target and self.error is None and time.time() < end:
                self.cv.wait(1)
            if self.error is not None:
                fail("%s: %s" % (what, self.error))
            if self.got < target:
                fail("%s: stuck at reply %d" % (what, self.got))


def reuseaddr_of_connection(pid, local_port):
    """SO_REUSEADDR of the server's socket connected to the client's
    `local_port` (a copy through pidfd_getfd)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                if not os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:"):
                    continue
            except OSError:
                continue
            copy = libc.syscall(438, pidfd, int(fd), 0)  # pidfd_getfd
            if copy < 0:
                continue
            s = socket.socket(fileno=copy)
            try:
                if s.family == socket.AF_INET and s.type == socket.SOCK_STREAM and s.getpeername()[1] == local_port:
                    return s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
            except OSError:
                pass
            finally:
                s.close()
    finally:
        os.close(pidfd)
    fail("no socket of process %d is connected to port %d" % (pid, local_port))


def one_shot(what):
    """A new client: one request, one reply."""
    with socket.create_connection(("127.0.0.1", 7070), timeout=30) as c:
        c.sendall(b"5\n")
        r = c.makefile().readline().strip()
        if r != "5 5":
            fail("%s: a new client got %r" % (what, r))


def wait_closed():
    """Until the server has closed the one-shot connection (as it goes, it passes through LAST_ACK, which
    a dump refuses)."""
    for _ in range(500):
        out = subprocess.run(["ss", "-tnH", "state", "close-wait"], capture_output=True, text=True).stdout
        if not out.strip():
            return
        time.sleep(0.01)
    fail("the server never closed a finished connection")


def start_server(code=ckpttest.SUM_SERVER, args=("127.0.0.1", "7070")):
    """python3 running `code`, once it says "listening"."""
    out = open(os.path.join(W, "server.out"), "w")
    server = subprocess.Popen([sys.executable, "-c", code] + list(args), stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, close_fds=True)
    for _ in range(1500):
        if "listening" in open(os.path.join(W, "server.out")).read():
            break
        time.sleep(0.02)
    else:
        fail("the server did not start: " + open(os.path.join(W, "server.out")).read())
    server_pid[0] = server.pid
    return server


def worker_killed():
    server = start_server()
    pid = server.pid
    c = Client()
    c.wait_more(200, "before any dump")
    img = os.path.join(W, "img")
    for point in ("freeze", "collect", "pages", "commit"):
        for opts in (["--leave-running"], []):
            where = "worker killed at %s %s" % (point, " ".join(opts))
            env = dict(os.environ, CKPT_ENGINE_FAULT="kill-worker-at-" + point)
            r = subprocess.run([CKPT, "dump", str(pid), "-D", img, "--no-sync"] + opts, capture_output=True,
                               text=True, env=env)
            if r.returncode != 1 or "worker process" not in r.stderr:
                fail("%s: exit %d: %s" % (where, r.returncode, r.stderr))
            if server.poll() is not None:
                fail("%s: the server ended with %s" % (where, server.returncode))
            if locks_left():
                fail("%s: the network lock was left: %s" % (where, locks_left()))
            before = c.got
            c.wait_more(100, where + " (" + r.stderr.strip() + ")")
            one_shot(where)
            wait_closed()
            print("ok   %s: the same connection went on, replies %d -> %d (%s)" % (where, before, c.got, r.stderr.strip()), flush=True)
    c.stop = True
    print("PASS: %d replies checked on one connection across 8 dumps whose worker was killed" % c.got)


HALF_SERVER = r'''
import os, select, socket, sys, time
d = sys.argv[1]
ls = {}
for port in (7071, 7072):
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("127.0.0.1", port))
    l.listen()
    ls[l] = port
print("listening", flush=True)
def read_all(c):
    buf = b""
    while True:
        chunk = c.recv(65536)
        if not chunk:
            return buf
        buf += chunk
while True:
    r, _, _ = select.select(list(ls), [], [])
    c, _ = r[0].accept()
    port = ls[r[0]]
    buf = read_all(c) if port == 7072 else None
    open(d + "/waiting-%d" % port, "w").close()
    while not os.path.exists(d + "/go-%d" % port):
        time.sleep(0.01)
    if buf is None:
        buf = read_all(c)
    nums = [int(x) for x in buf.split()]
    c.sendall(b"count %d sum %d\n" % (len(nums), sum(nums)))
    c.close()
'''


def close_wait():
    server = start_server(HALF_SERVER, (W,))
    pid = server.pid
    img = os.path.join(W, "img")
    n = 5000
    for port in (7071, 7072):
        what = "port %d (%s)" % (port, "lines queued" if port == 7071 else "lines read")
        c = socket.create_connection(("127.0.0.1", port), timeout=60)
        c.sendall(b"".join(b"%d\n" % i for i in range(1, n + 1)))
        c.shutdown(socket.SHUT_WR)
        for _ in range(1500):
            st = subprocess.run(["ss", "-tnH", "state", "close-wait", "sport", "= :%d" % port],
                                capture_output=True, text=True).stdout
            if st.strip() and os.path.exists(os.path.join(W, "waiting-%d" % port)):
                break
            time.sleep(0.02)
        else:
            fail("%s: the server side never reached CLOSE_WAIT" % what)
        for rnd in (1, 2):
            r = subprocess.run([CKPT, "dump", str(pid), "-D", img], capture_output=True, text=True)
            if r.returncode != 0:
                fail("%s: dump %d: %s" % (what, rnd, r.stderr))
            if pid == server.pid:
                server.wait()
            time.sleep(0.2)
            r = subprocess.run([CKPT, "restore", "-D", img, "--detach"], capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                fail("%s: restore %d: %s" % (what, rnd, r.stderr))
            pid = server_pid[0] = int(r.stdout)
            if locks_left():
                fail("%s: restore %d left the network lock: %s" % (what, rnd, locks_left()))
        open(os.path.join(W, "go-%d" % port), "w").close()
        f = c.makefile("rb")
        answer = f.readline().strip().decode()
        want = "count %d sum %d" % (n, n * (n + 1) // 2)
        if answer != want:
            fail("%s: the server answered %r after two restores, expected %r" % (what, answer, want))
        if f.read() != b"":
            fail("%s: more than the answer before end-of-file" % what)
        c.close()
        print("ok   %s: half-closed across two restores, answered %r, then end-of-file" % (what, answer), flush=True)
    subprocess.run(["kill", "-9", str(pid)])
    print("PASS: two half-closed (CLOSE_WAIT) connections restored twice each")


def peer_moved():
    server = start_server()
    pid = server.pid
    c = Client()
    c.wait_more(200, "before the dump")
    c.stop = True
    c.t.join(60)
    if c.error is not None:
        fail("before the dump: " + c.error)
    img = os.path.join(W, "img")
    r = subprocess.run([CKPT, "dump", str(pid), "-D", img], capture_output=True, text=True)
    if r.returncode != 0:
        fail("dump: " + r.stderr)
    server.wait()
    # The client thread stopped between requests, but some may still be in
    # flight: their replies are read first.
    want = c.sent + 1
    c.s.sendall(b"%d\n" % want)
    c.s.shutdown(socket.SHUT_WR)
    time.sleep(0.5)  # meanwhile, the request and the FIN are dropped and retransmitted
    r = subprocess.run([CKPT, "restore", "-D", img, "--detach"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        fail("restore: " + r.stderr)
    server_pid[0] = int(r.stdout)
    f = c.s.makefile("rb")
    total, got = c.total, c.got
    pending = c.buf.split(b"\n")  # replies the client thread had received but not read
    leftover = pending.pop()
    while got < want:
        if pending:
            line = pending.pop(0)
        else:
            line, leftover = leftover + f.readline(), b""
        if not line:
            fail("end-of-file after reply %d, before the reply to %d" % (got, want))
        n, s = map(int, line.split())
        if n != got + 1 or s != total + n:
            fail("reply %r after reply %d" % (line, got))
        got, total = n, s
    if f.read() != b"":
        fail("more than the replies before end-of-file")
    if locks_left():
        fail("the restore left the network lock: %s" % locks_left())
    print("PASS: the request and the FIN sent while the image waited were answered after the restore "
          "(reply %d, sum %d), then end-of-file" % (got, total))


HALF_CLIENT = r'''
import os, socket, sys, time
d = sys.argv[1]
c = socket.create_connection(("127.0.0.1", 7073))
c.sendall(b"".join(b"%d\n" % i for i in range(1, 5001)))
c.shutdown(socket.SHUT_WR)
buf = b""
while True:
    chunk = c.recv(65536)
    if not chunk:
        break
    buf += chunk
open(d + "/answer.tmp", "wb").write(buf)
os.rename(d + "/answer.tmp", d + "/answer")
while True:
    time.sleep(1)
'''


def wait_fin_wait2(what):
    """Waits up to 30 s for the client's end of port 7073 to be in FIN_WAIT2; else fails with `what` and ss."""
    for _ in range(1500):
        st = subprocess.run(["ss", "-tnH", "state", "fin-wait-2", "dport", "= :7073"], capture_output=True,
                            text=True).stdout
        if st.strip():
            return
        time.sleep(0.02)
    fail("%s: %s" % (what, subprocess.run(["ss", "-tnH", "dport", "= :7073"], capture_output=True,
                                          text=True).stdout))


def fin_wait():
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 7073))
    ls.listen()
    client = subprocess.Popen([sys.executable, "-c", HALF_CLIENT, W], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True)
    pid = server_pid[0] = client.pid
    ls.settimeout(60)
    s, _ = ls.accept()
    s.settimeout(60)
    f = s.makefile("rb")
    nums = [int(x) for x in f.read().split()]  # to the client's end-of-file
    wait_fin_wait2("the client never reached FIN_WAIT2")
    img = os.path.join(W, "img")
    for rnd in (1, 2):
        r = subprocess.run([CKPT, "dump", str(pid), "-D", img], capture_output=True, text=True)
        if r.returncode != 0:
            fail("dump %d of the half-closed client: %s" % (rnd, r.stderr))
        if rnd == 1:
            client.wait()
        time.sleep(0.2)
        r = subprocess.run([CKPT, "restore", "-D", img, "--detach"], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            fail("restore %d: %s" % (rnd, r.stderr))
        pid = server_pid[0] = int(r.stdout)
        # Its FIN again (dropped under the lock until the restore lifts it):
        # FIN_WAIT2 once the server acknowledges it.
        wait_fin_wait2("restore %d: the client is not in FIN_WAIT2 again" % rnd)
        if locks_left():
            fail("restore %d left the network lock: %s" % (rnd, locks_left()))
    s.sendall(b"count %d sum %d\n" % (len(nums), sum(nums)))
    f.close()  # (the file object holds the socket open: close() alone would send no FIN)
    s.close()
    path = os.path.join(W, "answer")
    for _ in range(1500):
        if os.path.exists(path):
            break
        time.sleep(0.02)
    else:
        fail("the restored client never wrote its answer: %s" %
             subprocess.run(["ss", "-tnoie", "( sport = :7073 or dport = :7073 )"], capture_output=True,
                            text=True).stdout)
    got = open(path).read()
    want = "count 5000 sum %d\n" % (5000 * 5001 // 2)
    if got != want:
        fail("the restored client read %r, expected %r" % (got, want))
    subprocess.run(["kill", "-9", str(pid)])
    print("PASS: a client in FIN_WAIT2 restored twice read the answer %r and end-of-file" % got.strip())

OPTIONS_SERVER = r'''
import socket, sys
S, T = socket.SOL_SOCKET, socket.IPPROTO_TCP
ls = socket.socket()
ls.setsockopt(S, socket.SO_REUSEADDR, 1)
ls.setsockopt(S, socket.SO_KEEPALIVE, 1)
ls.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0x08)
ls.setsockopt(S, socket.SO_PRIORITY, 2)
ls.setsockopt(socket.IPPROTO_IP, 15, 1)  # IP_FREEBIND
ls.bind(("127.0.0.1", 7074))
ls.listen()
ls.setsockopt(T, socket.TCP_DEFER_ACCEPT, 5)
ls.setsockopt(T, socket.TCP_FASTOPEN, 7)
print("listening", flush=True)
c, _ = ls.accept()   # the one the options are on
u, _ = ls.accept()   # the one that gets urgent data
c.setsockopt(S, socket.SO_KEEPALIVE, 1)
c.setsockopt(T, socket.TCP_KEEPIDLE, 77)
c.setsockopt(T, socket.TCP_KEEPINTVL, 11)
c.setsockopt(T, socket.TCP_KEEPCNT, 5)
c.setsockopt(S, socket.SO_LINGER, (1).to_bytes(4, "little") + (9).to_bytes(4, "little"))
c.setsockopt(T, socket.TCP_USER_TIMEOUT, 12345)
c.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0x10)
c.setsockopt(S, socket.SO_PRIORITY, 3)
c.setsockopt(S, socket.SO_MARK, 42)
c.setsockopt(socket.IPPROTO_IP, 19, 1)  # IP_TRANSPARENT
c.setsockopt(T, socket.TCP_NOTSENT_LOWAT, 65536)
c.setsockopt(T, socket.TCP_CONGESTION, b"reno")
def report():
    v = [c.getsockopt(S, socket.SO_KEEPALIVE), c.getsockopt(T, socket.TCP_KEEPIDLE),
         c.getsockopt(T, socket.TCP_KEEPINTVL), c.getsockopt(T, socket.TCP_KEEPCNT),
         c.getsockopt(S, socket.SO_LINGER, 8).hex(), c.getsockopt(T, socket.TCP_USER_TIMEOUT),
         c.getsockopt(socket.IPPROTO_IP, socket.IP_TOS), c.getsockopt(S, socket.SO_PRIORITY),
         ls.getsockopt(S, socket.SO_KEEPALIVE), ls.getsockopt(socket.IPPROTO_IP, socket.IP_TOS),
         ls.getsockopt(S, socket.SO_PRIORITY)]
    more = [c.getsockopt(S, socket.SO_MARK), c.getsockopt(socket.IPPROTO_IP, 19),
            c.getsockopt(T, socket.TCP_NOTSENT_LOWAT), c.getsockopt(T, socket.TCP_CONGESTION, 16).rstrip(b"\0").decode(),
            ls.getsockopt(socket.IPPROTO_IP, 15), ls.getsockopt(T, socket.TCP_FASTOPEN),
            ls.getsockopt(T, socket.TCP_DEFER_ACCEPT)]
    return " ".join(str(x) for x in v) + " | " + " ".join(str(x) for x in more)
f = c.makefile("rwb", buffering=0)
for line in f:
    cmd = line.strip()
    if cmd == b"report":
        c.sendall(report().encode() + b"\n")
    elif cmd == b"oob":
        c.sendall(b"oob " + u.recv(1, socket.MSG_OOB) + b"\n")
'''

# What the server must report: the connection's keepalive, idle, interval, count, linger (on, 9 s),
# user timeout, TOS, priority; the listener's keepalive, TOS, priority; then the connection's mark,
# IP_TRANSPARENT, TCP_NOTSENT_LOWAT, congestion control, the listener's IP_FREEBIND and TCP_FASTOPEN
# queue; its TCP_DEFER_ACCEPT, as the kernel rounds 5 s (checked > 0, then equal after each restore).
OPTIONS_WANT = "1 77 11 5 0100000009000000 12345 16 3 1 8 2 | 42 1 65536 reno 1 7 "


def options():
    server = start_server(OPTIONS_SERVER, ())
    pid = server.pid
    c = socket.create_connection(("127.0.0.1", 7074), timeout=30)
    u = socket.create_connection(("127.0.0.1", 7074), timeout=30)
    f = c.makefile("rb")

    def ask(cmd, what):
        c.sendall(cmd + b"\n")
        r = f.readline().strip().decode()
        if not r:
            fail("%s: no answer to %r" % (what, cmd))
        return r

    got = ask(b"report", "before any dump")
    if not got.startswith(OPTIONS_WANT) or int(got[len(OPTIONS_WANT):] or 0) <= 0:
        fail("the server's own options: %r, expected %r and a deferral" % (got, OPTIONS_WANT))
    want = got
    img = os.path.join(W, "img")
    u.send(b"!", socket.MSG_OOB)
    time.sleep(0.2)
    r = subprocess.run([CKPT, "dump", str(pid), "-D", img], capture_output=True, text=True)
    if r.returncode == 0 or "urgent" not in r.stderr:
        fail("a dump with unread urgent data: exit %d, %r (expected a refusal naming it)" % (r.returncode, r.stderr))
    if server.poll() is not None or locks_left():
        fail("after the refused dump the server ended (%r) or a lock is left (%s)" % (server.poll(), locks_left()))
    if ask(b"report", "after the refused dump") != want:
        fail("the refused dump changed the server's options")
    if ask(b"oob", "reading the urgent byte") != "oob !":
        fail("the server did not read the urgent byte")
    print("ok   urgent data not yet read: refused (%s), the server ran on and then read it" %
          r.stderr.strip().splitlines()[-1], flush=True)
    for rnd in (1, 2):
        pid = server_pid[0] = ckpttest.dump_and_restore(CKPT, pid, img, "restore %d" % rnd, fail,
                                                        server if rnd == 1 else None)
        got = ask(b"report", "after restore %d" % rnd)
        if got != want:
            fail("after restore %d the options are %r, expected %r" % (rnd, got, want))
        print("ok   restore %d: the same connection reports the same options: %s" % (rnd, got), flush=True)
    subprocess.run(["kill", "-9", str(pid)])
    print("PASS: socket options kept across two restores; unread urgent data refused")


def main():
    if MODE == "options":
        return options()
    if MODE == "fin-wait":
        return fin_wait()
    if MODE == "peer-moved":
        return peer_moved()
    if MODE == "worker":
        return worker_killed()
    if MODE == "close-wait":
        return close_wait()
    server = start_server()
    pid = server.pid
    c = Client()
    c.wait_more(200, "before any dump")
    img = os.path.join(W, "img")
    for rnd in range(1, 4):
        r = subprocess.run([CKPT, "dump", str(pid), "-D", img], capture_output=True, text=True)
        if r.returncode != 0:
            fail("dump %d: %s" % (rnd, r.stderr))
        if rnd == 1:
            server.wait()
        held = c.got
        if len(locks_left()) != 1:
            fail("dump %d: the network lock is not held while the image waits: %s" % (rnd, locks_left()))
        time.sleep(0.3)  # the client's requests meet the lock meanwhile
        r = subprocess.run([CKPT, "restore", "-D", img, "--detach"], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            fail("restore %d: %s" % (rnd, r.stderr))
        pid = server_pid[0] = int(r.stdout)
        c.wait_more(300, "after restore %d" % rnd)
        if locks_left():
            fail("restore %d left the network lock: %s" % (rnd, locks_left()))
        one_shot("after restore %d" % rnd)
        wait_closed()
        print("ok   restore %d: the connection went on from reply %d to %d" % (rnd, held, c.got), flush=True)
    reuse = reuseaddr_of_connection(pid, c.s.getsockname()[1])
    for rnd in range(1, 4):
        before = c.got
        r = subprocess.run([CKPT, "dump", str(pid), "-D", img + "-live", "--leave-running"], capture_output=True,
                           text=True)
        # Repair mode clears SO_REUSEADDR on the way out; the dump puts it back.
        if reuseaddr_of_connection(pid, c.s.getsockname()[1]) != reuse:
            fail("--leave-running dump %d changed the connection's SO_REUSEADDR (was %d)" % (rnd, reuse))
        if r.returncode != 0:
            fail("--leave-running dump %d: %s" % (rnd, r.stderr))
        if locks_left():
            fail("--leave-running dump %d left the network lock: %s" % (rnd, locks_left()))
        c.wait_more(200, "after --leave-running dump %d" % rnd)
        print("ok   --leave-running dump %d under load: replies %d -> %d" % (rnd, before, c.got), flush=True)
    c.stop = True
    subprocess.run(["kill", "-9", str(pid)])
    print("PASS: %d replies checked, one connection across 3 restores and 3 live dumps" % c.got)


try:
    main()
finally:
    if server_pid[0] is not None:  # also when a check failed: nothing of the test stays running
        subprocess.run(["kill", "-9", str(server_pid[0])], stderr=subprocess.DEVNULL)
    subprocess.run(["rm", "-rf", W])
