#!/usr/bin/env python3
"""Migration between hosts (issue 11): `ckpt migrate` over ssh:// and ckpt://
against the raw transfer of the same bytes over the same transport, a local
restore, and CRIU's dump -> scp -> restore, all in one run.

  migrate_net_bench.py [--gib 1] [--reps 3] [--criu PATH] [--max-load 1.5]
                       [--rows ROW,...] [--ssh-cipher C] [--json FILE]
                       [--prewarm GIB]

Two hosts, a and b: namespaces with their own network (veth pair through a
bridge), PIDs, /run, /dev/shm and sshd (tests/lib/hosts.py); ckptd in b with
certificates made at run time by the openssl CLI. Everything moves from a to
b. Needs root and the release build (build/bin: ckpt, ckptd, migrate_state).

Workloads (fresh for every repetition):
- program: bench/migrate_state, a CKPT program with GIB GiB of state, a
  sensor log zstd level 1 stores in ~0.23 of its size (not zeros, not
  random). Its checkpoint directory is a's /dev/shm (tmpfs: the image write
  costs no disk, as the spool on b is tmpfs too).
- process: python3 (unmodified) holding a bytearray of GIB GiB filled with
  pseudo-random bytes (incompressible; no zero pages to skip).

Rows:
- prog-ssh, prog-ssh-zstd, prog-tls, prog-tls-zstd: ckpt migrate of the
  program over ssh:// or ckpt:// (ckptd), without or with --compress zstd;
- proc-ssh, proc-tls: ckpt migrate of the python3 process;
- raw-ssh: GIB GiB from a's /dev/shm through `ssh b 'cat > /dev/null'`;
- raw-tls: GIB GiB from a's /dev/shm through a mutual-TLS 1.3 connection
  made by socat (C, OpenSSL, the certificates of ckpt://, 1 MiB buffers),
  a -> b, written to /dev/null; timed until the receiving socat ends;
- raw-tls-py: the same through python3's ssl module (a slower baseline:
  the python3 loop runs once per 16 KiB TLS record; shown, not used);
- local-prog: the program resumed in b from an image in b's /dev/shm,
  until it reports at its first safepoint (the held handoff, as `ckpt
  receive` does it: CKPT_HOLD_PORT);
- local-proc: `ckpt restore --detach` in b of the process's image in b's
  /dev/shm;
- criu: criu dump -t PID (a, images in a's /dev/shm) -> scp -r to b's
  /dev/shm -> criu restore -d (b), the same python3 workload.

Measured per row: wall time of the commands as a user runs them (exec, ssh
login or TLS handshake included), ckpt's own figures (--json: total_ms,
downtime_ms, bytes_sent, phases), CPU seconds per side:
- source: getrusage(RUSAGE_CHILDREN) of this script around the command in a
  (ckpt migrate, its ssh client, dump workers), plus for the program the CPU
  the program itself spent between the request and its exit (it prints its
  rusage at exit);
- target: over ssh, the growth of b's sshd's own + reaped children's CPU
  (/proc/PID/stat: sshd's cipher, `ckpt receive`, its children); over
  ckpt://, ckptd's (own + reaped children); plus the CPU the restored
  program or process had used when the command returned. `ssh_s` (source)
  and `recv_s` (target) are the ssh client's and ckpt receive's own shares,
  from /usr/bin/time wrappers (--ssh and --remote-ckpt take commands).
Medians over --reps; the rows take turns in a rotating order, each after
waiting (at most --wait-max s) for the 1-minute load average to drop below
--max-load; the load is printed with each measurement.

Memory: on the firecracker VM this was written on (virtio-balloon with free
page reporting), memory the guest has not touched for a few seconds has been
handed back to the host, and faulting it in again costs ~3 s per GiB instead
of ~0.6 s. A migration on one VM needs ~2 GiB of such memory at once (the
target's spool and the restored copy, while the source's copy still lives)
where a local restore reuses what the previous row just freed, so without
--prewarm the restore after a transfer (ckpt's and CRIU's alike) pays the
host's price and the rows are not comparable; --prewarm 4 makes every row
start with warm memory. Two real hosts have neither effect.

The data is checked after every migration: the program checks its whole
state against its formula (SIGUSR1), python3 its bytearray against a SHA-1
taken before (SIGUSR1).
"""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
sys.path.insert(0, os.path.join(ROOT, "tests", "migrate"))
import ckpttest as ck  # noqa: E402
import hosts as H  # noqa: E402
import test_ckptd as TC  # noqa: E402  (make_ca, make_cert)

BIN = ck.BIN
CKPT = os.path.join(BIN, "ckpt")
CKPTD = os.path.join(BIN, "ckptd")
STATE = os.path.join(BIN, "migrate_state")
RT = "/run/ckpt"
PORT = 7171
TLS_PORT = 7172
TICK = os.sysconf("SC_CLK_TCK")
ROWS = ["prog-ssh", "prog-ssh-zstd", "prog-tls", "prog-tls-zstd", "proc-ssh", "proc-tls", "raw-ssh", "raw-tls",
        "raw-tls-py", "local-prog", "local-proc", "criu"]

# The unmodified workload: N bytes of pseudo-random data; SIGUSR1 checks them.
PROC = r"""
import hashlib, random, signal, sys, time
n, out = int(sys.argv[1]), sys.argv[2]
b = bytearray(n)
r = random.Random(20261201)
for i in range(0, n, 1 << 20):
    b[i:i + (1 << 20)] = r.randbytes(min(1 << 20, n - i))
want = hashlib.sha1(b).hexdigest()
def check(*_):
    with open(out, "a") as f:
        f.write("verified\n" if hashlib.sha1(b).hexdigest() == want else "MISMATCH\n")
signal.signal(signal.SIGUSR1, check)
with open(out, "a") as f:
    f.write("ready\n")
while True:
    time.sleep(1)
"""

# Raw TLS: the receiving end (in b). Prints one JSON line when done.
TLS_SERVER = r"""
import json, resource, socket, ssl, sys, time
addr, port, cert, key, ca, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.load_cert_chain(cert, key)
ctx.load_verify_locations(ca)
ctx.verify_mode = ssl.CERT_REQUIRED
ls = socket.create_server((addr, port))
print("listening", flush=True)
conn, _ = ls.accept()
r0 = resource.getrusage(resource.RUSAGE_SELF)
s = ctx.wrap_socket(conn, server_side=True)
buf = bytearray(1 << 20)
got = 0
while got < n:
    k = s.recv_into(buf)
    if not k:
        break
    got += k
s.sendall(b"k")
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"got": got, "cipher": s.cipher()[0],
                  "cpu_s": r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime}), flush=True)
"""

# Raw TLS: the sending end (in a): the bytes of FILE, read chunk by chunk into
# one reused 1 MiB buffer (as ssh reads its standard input, as the dump reuses
# its buffers): on this VM the kernel's first access to freshly filled pages
# through a process's addresses costs a hypervisor fault each (docs/performance.md,
# "This VM"), which a 1 GiB buffer sent once would pay.
TLS_CLIENT = r"""
import json, resource, socket, ssl, sys, time
addr, port, cert, key, ca, path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.load_cert_chain(cert, key)
ctx.load_verify_locations(ca)
buf = bytearray(1 << 20)
view = memoryview(buf)
r0 = resource.getrusage(resource.RUSAGE_SELF)
t0 = time.perf_counter()
s = ctx.wrap_socket(socket.create_connection((addr, port)), server_hostname=addr)
with open(path, "rb", buffering=0) as f:
    while True:
        n = f.readinto(buf)
        if not n:
            break
        s.sendall(view[:n])
ack = s.recv(1)
t1 = time.perf_counter()
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"ack": ack.decode(), "seconds": t1 - t0, "cipher": s.cipher()[0],
                  "cpu_s": r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime}), flush=True)
"""

# The program resumed locally, held at its first safepoint as `ckpt receive`
# holds it; reports how long that took, then aborts it (status 76).
LOCAL_RESUME = r"""
import json, os, resource, secrets, socket, subprocess, sys, time
prog, image, args, out = sys.argv[1], sys.argv[2], sys.argv[3:-1], sys.argv[-1]
ls = socket.create_server(("127.0.0.1", 0))
token = secrets.token_hex(16)
env = dict(os.environ, CKPT_RESUME=image, CKPT_HOLD_PORT=str(ls.getsockname()[1]), CKPT_HOLD_TOKEN=token)
r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
t0 = time.perf_counter()
with open(out, "ab") as o:
    p = subprocess.Popen([prog] + args, env=env, stdin=subprocess.DEVNULL, stdout=o, stderr=o)
c, _ = ls.accept()
line = b""
while not line.endswith(b"\n"):
    k = c.recv(256)
    if not k:
        break
    line += k
t1 = time.perf_counter()
ok = line.split()[:2] == [b"CKPTHOLD", token.encode()]
c.sendall(b"x")
c.close()
rc = p.wait()
r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"seconds": t1 - t0, "held": ok, "rc": rc,
                  "cpu_s": r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime}))
"""


def prewarm(gib):
    """Touches GIB GiB of fresh memory and frees it: pages the VM then hands
    out again are cheap to fault in for a few seconds (see 'Memory')."""
    import mmap
    chunk = 64 << 20
    n = max(chunk, int(gib * (1 << 30)) // chunk * chunk)
    zeros = bytes(chunk)
    m = mmap.mmap(-1, n)
    for _ in range(n // chunk):
        m.write(zeros)
    m.close()


def die(msg):
    sys.exit("migrate_net_bench: " + msg)


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def proc_cpu(path):
    """(own, reaped children) CPU seconds of /proc/PID/stat at PATH; (0, 0) if gone."""
    try:
        with open(path) as f:
            st = f.read()
    except OSError:
        return 0.0, 0.0
    v = st[st.rindex(")") + 2:].split()
    return (int(v[11]) + int(v[12])) / TICK, (int(v[13]) + int(v[14])) / TICK


def proc_state(path):
    """The state letter of /proc/PID/stat at PATH, None if gone."""
    st = read(path)
    return st[st.rindex(")") + 2] if ")" in st else None


def host_proc_cpu(host, pid):
    own, kids = proc_cpu(host.path("/proc/%d/stat" % pid))
    return own + kids


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def wait_quiet(max_load, wait_max):
    end = time.monotonic() + wait_max
    while loadavg() >= max_load and time.monotonic() < end:
        time.sleep(2)
    return loadavg()


def wait_for(pred, what, timeout=120.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    die("timed out waiting for " + what)


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def time_file(path):
    """`/usr/bin/time -f %e,%U,%S -o PATH` output: (wall, cpu) or (None, None)."""
    m = re.search(r"([\d.]+),([\d.]+),([\d.]+)\s*$", read(path))
    return (float(m.group(1)), float(m.group(2)) + float(m.group(3))) if m else (None, None)


class Bench:
    def __init__(self, args, hosts, d):
        self.args, self.hosts, self.d = args, hosts, d
        self.a, self.b = hosts["a"], hosts["b"]
        self.nbytes = int(args.gib * (1 << 30))
        self.mib = self.nbytes >> 20
        self.work = os.path.join(d, "work")
        os.mkdir(self.work)
        self.pid_floor = 20000
        self.results = {r: [] for r in ROWS}
        self.env = ck.env(CKPT_RUNTIME_DIR=RT)
        # Every ssh of the run (raw, migrate, scp) with the same cipher.
        self.cipher_opt = ["-c", args.ssh_cipher] if args.ssh_cipher else []
        self.ssh = " ".join([hosts.ssh_command] + self.cipher_opt)

    # --- set-up ---------------------------------------------------------------

    def setup(self):
        d, b = self.d, self.b
        TC.make_ca(d, "ca")
        TC.make_cert(d, "server", "/CN=b", "ca", "serverAuth", "DNS:b,IP:" + b.addr)
        TC.make_cert(d, "node-a", "/O=ckpt-test/CN=node-a", "ca", "clientAuth")
        conf = os.path.join(d, "ckptd.conf")
        with open(conf, "w") as f:
            f.write("listen = %s:%d\nspool = %s/in\ncert = %s/server.pem\nkey = %s/server.key\nca = %s/ca.pem\n"
                    "workdir = %s\n[program migrate_state]\ncommand = %s\n"
                    "[peer \"CN=node-a, O=ckpt-test\"]\nallow = program, process\n" %
                    (b.addr, PORT, self.hosts.spool, d, d, d, self.work, STATE))
        self.ckptd_log = os.path.join(d, "ckptd.log")
        with open(self.ckptd_log, "wb") as f:
            self.ckptd = b.popen([CKPTD, "--config", conf], stdin=subprocess.DEVNULL, stdout=f,
                                 stderr=subprocess.STDOUT, env=self.env)
        wait_for(lambda: "listening on" in read(self.ckptd_log) or self.ckptd.poll() is not None, "ckptd")
        if self.ckptd.poll() is not None:
            die("ckptd did not start:\n" + read(self.ckptd_log))
        # The raw transfers' bytes, in a's memory (/dev/shm is a's own tmpfs).
        with open(self.a.path("/dev/shm/blob"), "wb") as f:
            for _ in range(self.nbytes >> 20):
                f.write(os.urandom(1 << 20))
        # The local images in b's /dev/shm: the program stopped at its first
        # safepoint, the process dumped (and killed) in b.
        p = self.b.run([STATE, self.mib, "900", "--ckpt-dir", "/dev/shm/local-prog", "--ckpt-stop-at", "1",
                        "--ckpt-no-listen"], cwd=self.work, capture_output=True, text=True, env=self.env)
        if p.returncode != 75:
            die("making the local program image failed (%d): %s" % (p.returncode, p.stderr))
        self.local_prog_image = "/dev/shm/local-prog/" + os.listdir(self.b.path("/dev/shm/local-prog"))[0]
        proc, out = self.start_process(self.b, "local")
        p = self.b.run([CKPT, "dump", proc.ns_pid, "-D", "/dev/shm/local-proc", "--no-sync"], capture_output=True,
                       text=True, env=self.env)
        if p.returncode != 0:
            die("ckpt dump of the local process image failed: " + p.stderr)
        proc.wait()
        self.local_proc_pid = proc.ns_pid
        if self.args.criu:
            for h in (self.a, self.b):
                p = h.run([self.args.criu, "check"], capture_output=True, text=True)
                if p.returncode != 0:
                    die("criu check in host %s failed: %s%s" % (h.name, p.stdout, p.stderr))

    # --- workloads --------------------------------------------------------------

    def next_pid_floor(self):
        self.pid_floor += 50
        return self.pid_floor

    def start_process(self, host, tag):
        """python3 with the bytearray, started inside the host (its /dev/null,
        setsid: CRIU needs both) at a PID free on both hosts."""
        out = os.path.join(self.work, "proc-%s.txt" % tag)
        if os.path.exists(out):
            os.remove(out)
        host.run(["sh", "-c", "echo %d > /proc/sys/kernel/ns_last_pid" % self.next_pid_floor()], check=True)
        proc = host.popen(["sh", "-c", 'exec setsid python3 -c "$0" "$1" "$2" </dev/null >/dev/null 2>&1', PROC,
                           str(self.nbytes), out], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: "ready" in read(out) or proc.poll() is not None, "python3 to fill its memory")
        if proc.poll() is not None:
            die("the python3 workload ended (%s)" % proc.poll())
        return proc, out

    def verify_process(self, host, pid, out):
        host.run(["kill", "-USR1", str(pid)], check=True)
        wait_for(lambda: "verified" in read(out) or "MISMATCH" in read(out), "python3 to check its bytes")
        if "verified" not in read(out):
            die("python3's bytes differ after the migration")
        host.run(["kill", "-9", str(pid)])
        # Gone, or a zombie: ckptd does not reap what it restored or resumed.
        wait_for(lambda: proc_state(host.path("/proc/%d/stat" % pid)) in (None, "Z"), "pid %d to end" % pid, 30)

    def start_program(self):
        # Programs resumed in b get b's next PIDs: keep them (and the zombies
        # ckptd leaves of them, it does not reap what it started) out of the
        # range of the processes' PIDs, which the engine restores as they were.
        self.b.run(["sh", "-c", "echo %d > /proc/sys/kernel/ns_last_pid" % (self.next_pid_floor() + 20000)],
                   check=True)
        for f in ("source.out", "source.err", "migrate_state.out", "migrate_state.err"):
            if os.path.exists(os.path.join(self.work, f)):
                os.remove(os.path.join(self.work, f))
        self.a.run(["rm", "-rf", "/dev/shm/prog"], check=True)
        out = open(os.path.join(self.work, "source.out"), "wb")
        err = open(os.path.join(self.work, "source.err"), "wb")
        proc = self.a.popen([STATE, self.mib, "900", "--ckpt-dir", "/dev/shm/prog"], cwd=self.work,
                            stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=self.env)
        out.close()
        err.close()
        wait_for(lambda: "ready" in read(os.path.join(self.work, "source.out")) or proc.poll() is not None,
                 "the program to fill its state")
        if proc.poll() is not None:
            die("migrate_state ended (%s): %s" % (proc.poll(), read(os.path.join(self.work, "source.err"))))
        return proc

    # --- target CPU ---------------------------------------------------------------

    def sshd_cpu(self):
        """b's sshd, its own and its reaped sessions' CPU, once no session is left."""
        pid = self.b.sshd.host_pid
        wait_for(lambda: not H._children(pid), "b's ssh sessions to end", 30)
        own, kids = proc_cpu("/proc/%d/stat" % pid)
        return own + kids

    def ckptd_cpu(self):
        own, kids = proc_cpu("/proc/%d/stat" % self.ckptd.host_pid)
        return own + kids

    # --- the rows -------------------------------------------------------------------

    def migrate_argv(self, pid, tls, zstd, tag):
        argv = [CKPT, "migrate", str(pid), "--json"]
        if tls:
            argv += ["--to", "ckpt://%s:%d" % (self.b.addr, PORT)] + TC.tls_args(self.d, "node-a")
        else:
            self.ssh_time = os.path.join(self.work, "ssh-time-" + tag)
            self.recv_time = os.path.join(self.work, "recv-time-" + tag)
            for f in (self.ssh_time, self.recv_time):
                if os.path.exists(f):
                    os.remove(f)
            argv += ["--to", self.b.url, "--remote-spool", self.hosts.spool,
                     "--ssh", "/usr/bin/time -f %%e,%%U,%%S -o %s %s" % (self.ssh_time, self.ssh),
                     "--remote-ckpt", "/usr/bin/time -f %%e,%%U,%%S -o %s %s" % (self.recv_time, CKPT)]
        if zstd:
            argv += ["--compress", "zstd"]
        return argv

    def run_migrate(self, pid, tls, zstd, tag):
        argv = self.migrate_argv(pid, tls, zstd, tag)
        tgt0 = self.ckptd_cpu() if tls else self.sshd_cpu()
        c0 = children_cpu()
        t0 = time.perf_counter()
        p = self.a.run(argv, capture_output=True, text=True, timeout=600, env=self.env)
        wall = time.perf_counter() - t0
        src = children_cpu() - c0
        if p.returncode != 0:
            die("%s failed (%d):\n%s\n%s" % (" ".join(argv), p.returncode, p.stdout, p.stderr))
        j = json.loads(p.stdout)
        if tls:
            time.sleep(0.5)  # ckptd cleans its spool after DONE
            tgt = self.ckptd_cpu() - tgt0
        else:
            tgt = self.sshd_cpu() - tgt0
        r = {"wall_s": wall, "total_s": j["total_ms"] / 1e3, "downtime_s": j["downtime_ms"] / 1e3,
             "bytes_sent": j["bytes_sent"], "image_bytes": j["image_bytes"],
             "checkpoint_s": j["phases_ms"]["checkpoint"] / 1e3, "transfer_s": j["phases_ms"]["transfer"] / 1e3,
             "restore_s": j["phases_ms"]["restore"] / 1e3, "src_cpu_s": src, "tgt_cpu_s": tgt}
        if not tls:
            r["ssh_s"] = time_file(self.ssh_time)[1]
            r["recv_s"] = time_file(self.recv_time)[1]
        return r, j

    def row_prog(self, tls, zstd):
        proc = self.start_program()
        before = host_proc_cpu(self.a, proc.ns_pid)
        r, j = self.run_migrate(proc.ns_pid, tls, zstd, "prog")
        rc = proc.wait(timeout=60)
        if rc != 75:
            die("the source program ended with %d, not 75" % rc)
        m = re.findall(r"migrate_state cpu_s ([\d.]+) ([\d.]+)", read(os.path.join(self.work, "source.err")))
        r["prog_cpu_s"] = float(m[-1][0]) + float(m[-1][1]) - before if m else None
        r["src_cpu_s"] += r["prog_cpu_s"] or 0
        r["restored_cpu_s"] = host_proc_cpu(self.b, j["pid"])
        r["tgt_cpu_s"] += r["restored_cpu_s"]
        out = os.path.join(self.work, "migrate_state.out")
        wait_for(lambda: "ready" in read(out), "the migrated program to run")
        self.b.run(["kill", "-USR1", str(j["pid"])], check=True)
        wait_for(lambda: "verified" in read(out) or "MISMATCH" in read(out), "the migrated program's check")
        if "verified" not in read(out):
            die("the migrated program's state differs: " + read(out))
        self.b.run(["kill", "-9", str(j["pid"])])
        return r

    def row_proc(self, tls):
        proc, out = self.start_process(self.a, "mig")
        r, j = self.run_migrate(proc.ns_pid, tls, False, "proc")
        proc.wait(timeout=60)
        r["restored_cpu_s"] = host_proc_cpu(self.b, j["pid"])
        r["tgt_cpu_s"] += r["restored_cpu_s"]
        self.verify_process(self.b, j["pid"], out)
        return r

    def row_raw_ssh(self):
        tgt0 = self.sshd_cpu()
        c0 = children_cpu()
        t0 = time.perf_counter()
        p = self.a.run(["sh", "-c", "%s b 'cat > /dev/null' < /dev/shm/blob" % self.ssh],
                       capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            die("raw ssh transfer failed: " + p.stderr)
        return {"wall_s": wall, "bytes_sent": self.nbytes, "src_cpu_s": children_cpu() - c0,
                "tgt_cpu_s": self.sshd_cpu() - tgt0}

    def row_raw_tls(self):
        d, a, b = self.d, self.a, self.b
        opts = "cert=%s/server.pem,key=%s/server.key,cafile=%s/ca.pem,verify=1" % (d, d, d)
        server = b.popen(["socat", "-u", "-b", "1048576", "OPENSSL-LISTEN:%d,bind=%s,reuseaddr,nodelay,%s" % (
            TLS_PORT, b.addr, opts), "OPEN:/dev/null"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
        wait_for(lambda: b.sh("ss -ltn | grep -q '%s:%d '" % (b.addr, TLS_PORT)).returncode == 0 or
                 server.poll() is not None, "socat to listen")
        copts = "cert=%s/node-a.pem,key=%s/node-a.key,cafile=%s/ca.pem,verify=1" % (d, d, d)
        c0 = children_cpu()
        t0 = time.perf_counter()
        client = ["socat", "-u", "-b", "1048576", "OPEN:/dev/shm/blob", "OPENSSL:%s:%d,nodelay,%s" % (b.addr, TLS_PORT, copts)]
        p = a.run(client, capture_output=True, text=True, timeout=600)
        c1 = children_cpu()
        _, err = server.communicate(timeout=600)
        wall = time.perf_counter() - t0
        if p.returncode != 0 or server.returncode != 0:
            die("raw TLS transfer (socat) failed: %s %s" % (p.stderr, err))
        return {"wall_s": wall, "bytes_sent": self.nbytes, "src_cpu_s": c1 - c0, "tgt_cpu_s": children_cpu() - c1}

    def row_raw_tls_py(self):
        d, b = self.d, self.b
        server = b.popen(["python3", "-c", TLS_SERVER, b.addr, str(TLS_PORT)] + [os.path.join(d, x) for x in (
            "server.pem", "server.key", "ca.pem")] + [str(self.nbytes)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if server.stdout.readline().strip() != "listening":
            die("the TLS server did not start: " + server.stderr.read())
        c0 = children_cpu()
        t0 = time.perf_counter()
        p = self.a.run(["python3", "-c", TLS_CLIENT, b.addr, str(TLS_PORT)] + TC.tls_args(d, "node-a")[1::2] +
                       ["/dev/shm/blob"], capture_output=True, text=True, timeout=600)
        wall = time.perf_counter() - t0
        out, err = server.communicate(timeout=60)
        if p.returncode != 0 or server.returncode != 0:
            die("raw TLS transfer failed: %s %s" % (p.stderr, err))
        cj, sj = json.loads(p.stdout), json.loads(out)
        if sj["got"] != self.nbytes or cj["ack"] != "k":
            die("raw TLS: %d bytes arrived of %d" % (sj["got"], self.nbytes))
        # The client's own clock: from the connection (handshake included) to
        # the receiver's acknowledgement of the last byte; the command's wall
        # time adds python3's start.
        return {"wall_s": cj["seconds"], "cmd_wall_s": wall, "bytes_sent": self.nbytes, "src_cpu_s": cj["cpu_s"],
                "tgt_cpu_s": sj["cpu_s"], "cipher": cj["cipher"]}

    def row_local_prog(self):
        c0 = children_cpu()
        t0 = time.perf_counter()
        p = self.b.run(["python3", "-c", LOCAL_RESUME, STATE, self.local_prog_image, self.mib, "900",
                        os.path.join(self.work, "local-prog.log")], cwd=self.work, capture_output=True, text=True,
                       env=self.env)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            die("local resume failed: " + p.stderr)
        j = json.loads(p.stdout)
        if not j["held"] or j["rc"] != 76:
            die("local resume: %s\n%s" % (j, read(os.path.join(self.work, "local-prog.log"))))
        return {"wall_s": j["seconds"], "cmd_wall_s": wall, "tgt_cpu_s": j["cpu_s"]}

    def row_local_proc(self):
        c0 = children_cpu()
        t0 = time.perf_counter()
        p = self.b.run([CKPT, "restore", "-D", "/dev/shm/local-proc", "--detach", "--json"], capture_output=True,
                       text=True, env=self.env)
        wall = time.perf_counter() - t0
        cpu = children_cpu() - c0
        if p.returncode != 0:
            die("local restore failed: " + p.stdout + p.stderr)
        pid = json.loads(p.stdout)["pid"]
        cpu += host_proc_cpu(self.b, pid)
        out = os.path.join(self.work, "proc-local.txt")
        with open(out, "w") as f:
            f.write("ready\n")
        self.verify_process(self.b, pid, out)
        return {"wall_s": wall, "tgt_cpu_s": cpu}

    def row_criu(self):
        a, b, criu = self.a, self.b, self.args.criu
        proc, out = self.start_process(a, "criu")
        for h in (a, b):
            h.run(["rm", "-rf", "/dev/shm/criu-img"], check=True)
        a.run(["mkdir", "/dev/shm/criu-img"], check=True)
        phases = {}
        src = tgt = 0.0

        def step(host, argv, what):
            c0 = children_cpu()
            t = time.perf_counter()
            p = host.run(argv, capture_output=True, text=True, timeout=600)
            phases[what] = time.perf_counter() - t
            if p.returncode != 0:
                log = read(host.path("/dev/shm/criu-img/%s.log" % what))
                die("criu %s failed (%d): %s%s\n%s" % (what, p.returncode, p.stdout, p.stderr, log[-3000:]))
            return children_cpu() - c0

        tgt0 = self.sshd_cpu()
        t0 = time.perf_counter()
        src += step(a, [criu, "dump", "-t", str(proc.ns_pid), "-D", "/dev/shm/criu-img", "-o", "dump.log"], "dump")
        scp = ["scp", "-q", "-r", "-F", self.hosts.ssh_config] + self.cipher_opt
        src += step(a, scp + ["/dev/shm/criu-img", "b:/dev/shm/"], "scp")
        tgt += step(b, [criu, "restore", "-D", "/dev/shm/criu-img", "-d", "-o", "restore.log"], "restore")
        wall = time.perf_counter() - t0
        tgt += self.sshd_cpu() - tgt0
        proc.wait(timeout=60)
        size = sum(os.path.getsize(os.path.join(a.path("/dev/shm/criu-img"), f))
                   for f in os.listdir(a.path("/dev/shm/criu-img")))
        restored = host_proc_cpu(b, proc.ns_pid)
        self.verify_process(b, proc.ns_pid, out)
        for h in (a, b):
            h.run(["rm", "-rf", "/dev/shm/criu-img"], check=True)
        return {"wall_s": wall, "downtime_s": wall, "bytes_sent": size, "src_cpu_s": src, "tgt_cpu_s": tgt + restored,
                "dump_s": phases["dump"], "scp_s": phases["scp"], "restore_s": phases["restore"]}

    def run_row(self, row):
        if row.startswith("prog-"):
            return self.row_prog("tls" in row, row.endswith("zstd"))
        if row.startswith("proc-"):
            return self.row_proc(row == "proc-tls")
        return {"raw-ssh": self.row_raw_ssh, "raw-tls": self.row_raw_tls, "raw-tls-py": self.row_raw_tls_py,
                "local-prog": self.row_local_prog,
                "local-proc": self.row_local_proc, "criu": self.row_criu}[row]()


# --- the report -------------------------------------------------------------------

def med(rows, key):
    v = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(v) if v else None


def fmt(v, unit="s"):
    if v is None:
        return "—"
    if unit == "B":
        return "%.1f MiB" % (v / (1 << 20))
    return "%.3f" % v


def report(bench, loads):
    res, nbytes = bench.results, bench.nbytes
    print("\nmigrate_net_bench: %g GiB, %d reps (median), hosts a -> b (veth), ssh cipher %s, prewarm %g GiB, "
          "load average during the measurements %.2f-%.2f (median %.2f)" % (
              bench.args.gib, bench.args.reps, bench.args.ssh_cipher or "default", bench.args.prewarm, min(loads),
              max(loads), statistics.median(loads)))
    print("| row | wall s | ckpt total s | downtime s | sent | checkpoint s | transfer s | restore s | "
          "CPU source s | CPU target s | notes |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in ROWS:
        rs = res[row]
        if not rs:
            continue
        notes = []
        for k, label in (("prog_cpu_s", "program"), ("ssh_s", "ssh client"), ("recv_s", "ckpt receive"),
                         ("restored_cpu_s", "restored"), ("dump_s", "dump"), ("scp_s", "scp"),
                         ("cmd_wall_s", "command")):
            if med(rs, k) is not None:
                notes.append("%s %.3f" % (label, med(rs, k)))
        if rs[0].get("cipher"):
            notes.append(rs[0]["cipher"])
        print("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            row, fmt(med(rs, "wall_s")), fmt(med(rs, "total_s")), fmt(med(rs, "downtime_s")),
            fmt(med(rs, "bytes_sent"), "B"), fmt(med(rs, "checkpoint_s")), fmt(med(rs, "transfer_s")),
            fmt(med(rs, "restore_s")), fmt(med(rs, "src_cpu_s")), fmt(med(rs, "tgt_cpu_s")), ", ".join(notes)))
    print("\nGoals:")
    base = {"ssh": "raw-ssh", "tls": "raw-tls"}
    for row in ("prog-ssh", "prog-ssh-zstd", "prog-tls", "prog-tls-zstd", "proc-ssh", "proc-tls"):
        raw, local = base["tls" if "tls" in row else "ssh"], "local-prog" if row.startswith("prog") else "local-proc"
        w, rw, lw = med(res[row], "wall_s"), med(res[raw], "wall_s"), med(res[local], "wall_s")
        if None in (w, rw, lw):
            continue
        tot = med(res[row], "total_s")
        print("  %-14s wall %.3f s / (%s %.3f + %s %.3f) = %.2fx  (ckpt's total_ms: %.2fx)  goal <= 1.1x: %s" % (
            row, w, raw, rw, local, lw, w / (rw + lw), tot / (rw + lw), "met" if w / (rw + lw) <= 1.1 else "NOT met"))
    crit = med(res["criu"], "wall_s")
    if crit is None:
        print("  criu: not measured" + ("" if bench.args.criu else " (no --criu PATH given)"))
    else:
        for row in ("proc-ssh", "proc-tls"):
            w = med(res[row], "wall_s")
            if w is not None:
                print("  %-14s %.3f s vs criu dump -> scp -> restore %.3f s: criu / ckpt = %.2fx  faster: %s" % (
                    row, w, crit, crit / w, "met" if w < crit else "NOT met"))
    for row in ("prog-ssh-zstd", "prog-tls-zstd"):
        s = med(res[row], "bytes_sent")
        if s is not None:
            print("  %-14s sent %d bytes for %d bytes of raw state: %.3f  fewer: %s" % (
                row, s, nbytes, s / nbytes, "met" if s < nbytes else "NOT met"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gib", type=float, default=1.0, help="state / memory size in GiB (default 1)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--criu", help="an upstream CRIU binary (built outside the repository); without it no criu row")
    ap.add_argument("--max-load", type=float, default=1.5, help="wait for the 1-minute load average below this")
    ap.add_argument("--wait-max", type=float, default=10, help="at most this many seconds per wait for quiet")
    ap.add_argument("--rows", default=",".join(ROWS), help="comma-separated subset of " + ",".join(ROWS))
    ap.add_argument("--ssh-cipher", help="ssh -c CIPHER for every ssh row (default: OpenSSH's, chacha20-poly1305)")
    ap.add_argument("--json", help="write every measurement to this file")
    ap.add_argument("--prewarm", type=float, default=0,
                    help="touch and free this many GiB of memory just before each row (see 'Memory' above)")
    args = ap.parse_args()
    rows = [r for r in args.rows.split(",") if r]
    for r in rows:
        if r not in ROWS:
            die("unknown row %r (rows: %s)" % (r, ", ".join(ROWS)))
    if not args.criu and "criu" in rows:
        rows.remove("criu")
        print("note: no --criu PATH: the criu row (dump -> scp -> restore) is skipped")
    for tool in (CKPT, CKPTD, STATE):
        if not os.path.exists(tool):
            die(tool + " is missing: build the release preset first")
    why = H.unavailable()
    if why:
        die("cannot make hosts: " + why)
    if not shutil.which("openssl") or not os.path.exists("/usr/bin/time") or not shutil.which("socat"):
        die("needs the openssl CLI, /usr/bin/time and socat (Debian packages openssl, time, socat)")
    d = tempfile.mkdtemp(prefix="ckpt-mnb-", dir="/var/tmp")
    os.chmod(d, 0o755)
    loads = []
    ssh_env = {"CKPT_RUNTIME_DIR": RT, "PATH": BIN + ":/usr/sbin:/usr/bin:/sbin:/bin"}
    try:
        with H.Hosts(("a", "b"), ssh_env=ssh_env) as hosts:
            bench = Bench(args, hosts, d)
            bench.setup()
            print("hosts a (%s) and b (%s); warming up (ssh, one raw transfer)" % (hosts["a"].addr, hosts["b"].addr))
            bench.row_raw_ssh()
            for rep in range(args.reps):
                order = rows[rep % len(rows):] + rows[:rep % len(rows)]
                for row in order:
                    load = wait_quiet(args.max_load, args.wait_max)
                    loads.append(load)
                    if args.prewarm > 0:
                        prewarm(args.prewarm)
                    r = bench.run_row(row)
                    r["load"] = load
                    bench.results[row].append(r)
                    print("rep %d %-14s load %.2f  %s" % (rep, row, load, " ".join(
                        "%s=%s" % (k, ("%.3f" % v) if isinstance(v, float) else v) for k, v in r.items()
                        if k != "load")), flush=True)
            report(bench, loads)
            if args.json:
                with open(args.json, "w") as f:
                    json.dump({"gib": args.gib, "reps": args.reps, "results": bench.results}, f, indent=1)
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
