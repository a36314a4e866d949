#!/usr/bin/env python3
"""Several "hosts" on this one machine, for the migration tests.

    with Hosts(("a", "b")) as hosts:
        a, b = hosts["a"], hosts["b"]
        a.run(["ssh", "-F", hosts.ssh_config, "b", "hostname"], check=True)
        a.run(["ckpt", "migrate", ..., "--to", b.url, "--ssh", hosts.ssh_command])

Each host is a process (`init`) that holds its own network, mount, PID, IPC
and UTS namespaces. Its mount namespace has private tmpfs on /run (with
/run/sshd for sshd), /dev/shm and the spool directory (`Hosts.spool`, the same
path on every host, a per-run directory that stays empty outside the hosts).
The hosts share one L2 segment: a bridge in a hidden "switch" network
namespace (held by another process), one veth pair per host, a random
10.x.y.0/24 subnet that no address or route of the root namespace uses. Each
host runs its own sshd on its address, port 22, with a per-run host key and a
per-run key for root; `Hosts.ssh_config` names every host (`Host a` ...).

No namespace is named (nothing in /run/netns), no file outside the per-run
temporary directory is written. Every namespace dies with the process that
holds it, and those processes read a pipe from this one: if the test is killed
outright, the namespaces, mounts and interfaces go with it (only the temporary
directory can stay behind then). Standard library only.

`tests/lib/hosts.py --selftest` checks the whole thing (ctest: migrate_hosts).
"""
import ipaddress
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ckpttest  # noqa: E402

SKIP = ckpttest.SKIP
TOOLS = ("unshare", "nsenter", "ip", "ssh", "ssh-keygen", "mount", "hostname")
SSHD = "/usr/sbin/sshd"
# Holds the namespaces: PID 1 of the host's PID namespace. Reaps orphans (SIGCHLD
# ignored), ends when the pipe from the test process closes (then the kernel
# kills everything else in the PID namespace).
INIT = "import os, signal\nsignal.signal(signal.SIGCHLD, signal.SIG_IGN)\nwhile os.read(0, 64): pass\n"


class HostsUnavailable(Exception):
    """This machine cannot make hosts (no root, no namespaces, no sshd...)."""


def _sh(argv, what, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise RuntimeError("hosts: %s failed (%s exited %d): %s" % (what, " ".join(map(str, argv)), p.returncode,
                                                                  (p.stderr or p.stdout).strip()))
    return p.stdout


def unavailable():
    """None if this machine can make hosts, else the reason."""
    if os.geteuid() != 0:
        return "needs root (network and mount namespaces)"
    missing = [t for t in TOOLS if not shutil.which(t)]
    if not os.access(SSHD, os.X_OK):
        missing.append(SSHD + " (Debian package openssh-server)")
    if missing:
        return "missing " + ", ".join(missing)
    probe = ("ip link add ckprobe0 type bridge && ip link add ckprobe1 type veth peer name ckprobe2 "
             "&& ip link set ckprobe1 master ckprobe0")
    p = subprocess.run(["unshare", "--net", "--mount", "--pid", "--fork", "--ipc", "--uts", "--mount-proc",
                        "--propagation", "private", "sh", "-c", probe], capture_output=True, text=True)
    if p.returncode != 0:
        return "cannot make namespaces, a bridge and veth pairs: " + (p.stderr or p.stdout).strip()
    return None


def skip_unless_available():
    """Exits with ctest's skip code when hosts cannot be made here."""
    why = unavailable()
    if why:
        print("SKIP: hosts.py: " + why)
        sys.exit(SKIP)


def _free_subnet(rng):
    """A random 10.x.y.0/24 that no address or route of this namespace overlaps."""
    used = []
    for argv in (["ip", "-o", "-4", "addr", "show"], ["ip", "-4", "route", "show", "table", "all"]):
        for word in _sh(argv, "listing addresses").split():
            try:
                used.append(ipaddress.ip_network(word, strict=False))
            except ValueError:
                pass
    used = [n for n in used if n.prefixlen > 0]  # a default route overlaps everything
    for _ in range(1000):
        net = ipaddress.ip_network("10.%d.%d.0/24" % (rng.randrange(1, 255), rng.randrange(0, 256)))
        if not any(net.overlaps(u) for u in used):
            return net
    raise RuntimeError("hosts: no free 10.x.y.0/24 subnet")


def _children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def _wait_child(proc, timeout=10.0):
    """The pid (in this namespace) of the process that `unshare --fork` or
    `nsenter -p` (`proc`) forked; None if it has already ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = _children(proc.pid)
        if kids:
            return kids[0]
        if proc.poll() is not None:
            return None
        time.sleep(0.001)
    raise RuntimeError("hosts: %s forked nothing in %.0f s" % (proc.args[0], timeout))


def _ns_pid(pid):
    """pid's number in its own PID namespace (the last NSpid field)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except OSError:
        pass
    return None


class HostProcess(subprocess.Popen):
    """A process started in a host through `nsenter`. `pid` is nsenter's;
    `host_pid` is the process's own pid in the root PID namespace, `ns_pid` the
    one it sees itself (small). Signals go to the process itself, not to
    nsenter, which then ends with the same status."""

    def __init__(self, argv, **kw):
        super().__init__(argv, **kw)
        self.host_pid = _wait_child(self)
        self.ns_pid = _ns_pid(self.host_pid) if self.host_pid else None
        self._pidfd = None
        if self.host_pid:
            try:
                self._pidfd = os.pidfd_open(self.host_pid)
            except OSError:  # already gone
                pass

    def send_signal(self, sig):
        if self._pidfd is not None and self.returncode is None:
            try:
                signal.pidfd_send_signal(self._pidfd, sig)
                return
            except ProcessLookupError:
                pass
        super().send_signal(sig)

    def _close_pidfd(self):
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None

    def wait(self, timeout=None):
        rc = super().wait(timeout)
        self._close_pidfd()
        return rc

    def __del__(self):
        self._close_pidfd()
        super().__del__()


class Host:
    """One host: `name`, `addr` (IPv4 address), `url` (ssh://NAME), `spool`
    (a tmpfs private to this host), `init_pid` (holds its namespaces), `sshd`
    (its HostProcess), `sshd_log` (what sshd says, -e)."""

    def __init__(self, hosts, name, addr):
        self.hosts, self.name, self.addr = hosts, name, addr
        self.url = "ssh://" + name
        self.spool = hosts.spool
        self.init_pid = None
        self.sshd = None
        self.sshd_log = None
        self._init = None
        self._procs = []

    @property
    def enter(self):
        """The command prefix that runs something in this host."""
        return ["nsenter", "-t", str(self.init_pid), "-n", "-m", "-p", "-i", "-u", "--"]

    def path(self, p):
        """Where this host's file `p` is seen from outside (e.g. in its spool)."""
        return "/proc/%d/root%s" % (self.init_pid, os.path.abspath(p))

    def _argv(self, argv, cwd):
        argv = [str(a) for a in argv]
        # nsenter --wd would resolve the directory outside the host.
        return self.enter + ["/usr/bin/env", "--chdir=" + str(cwd or os.getcwd())] + argv

    def popen(self, argv, cwd=None, **kw):
        """Starts argv in this host (its network, mounts, PIDs); subprocess.Popen
        keywords. Killed, at the latest, when the hosts end."""
        p = HostProcess(self._argv(argv, cwd), **kw)
        self._procs.append(p)
        return p

    def run(self, argv, input=None, capture_output=False, timeout=None, check=False, **kw):
        """subprocess.run(argv, ...) in this host. On timeout the process in the
        host is killed, not just nsenter."""
        if capture_output:
            kw["stdout"] = kw["stderr"] = subprocess.PIPE
        if input is not None:
            kw["stdin"] = subprocess.PIPE
        with self.popen(argv, **kw) as p:
            try:
                out, err = p.communicate(input, timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                raise
            except BaseException:
                p.kill()
                raise
        if check and p.returncode:
            raise subprocess.CalledProcessError(p.returncode, argv, out, err)
        return subprocess.CompletedProcess(argv, p.returncode, out, err)

    def sh(self, script, **kw):
        """run(["sh", "-c", script]) with text output captured."""
        return self.run(["sh", "-c", script], capture_output=True, text=True, **kw)

    def _start(self):
        self._init = subprocess.Popen(
            ["unshare", "--net", "--mount", "--pid", "--fork", "--ipc", "--uts", "--mount-proc", "--propagation",
             "private", sys.executable, "-c", INIT], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        self.init_pid = _wait_child(self._init)
        if self.init_pid is None or _ns_pid(self.init_pid) != 1:
            err = self._init.stderr.read().decode(errors="replace").strip() if self._init.poll() is not None else ""
            raise HostsUnavailable("host %s: cannot make its namespaces: %s" % (self.name, err or "init is not pid 1"))

    def _setup(self, net, spool_size):
        size = ",size=" + spool_size if spool_size else ""
        script = """set -e
mount -t tmpfs -o mode=0755 ckpt-host-run /run
mkdir -m 0755 /run/sshd
mount -t tmpfs -o mode=1777 ckpt-host-shm /dev/shm
mount -t tmpfs -o mode=0755{size} ckpt-spool {spool}
hostname {name}
ip link set lo up
ip addr add {addr}/{plen} dev eth0
ip link set eth0 up
""".format(size=size, spool=shlex.quote(self.spool), name=shlex.quote(self.name), addr=self.addr,
           plen=net.prefixlen)
        p = self.sh(script, timeout=30)
        if p.returncode != 0:
            raise RuntimeError("hosts: setting up host %s failed: %s" % (self.name, (p.stderr + p.stdout).strip()))

    def _start_sshd(self, config, pidfile, log):
        with open(log, "wb") as f:
            self.sshd = self.popen([SSHD, "-D", "-e", "-f", config], stdin=subprocess.DEVNULL, stdout=f,
                                   stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not os.path.exists(pidfile):  # written once sshd listens
            if self.sshd.poll() is not None or time.monotonic() > deadline:
                with open(log, errors="replace") as f:
                    text = f.read().strip()
                raise RuntimeError("hosts: sshd of host %s did not start: %s" % (self.name, text or "timeout"))
            time.sleep(0.01)

    def _stop(self):
        if self._init is not None:
            try:
                os.kill(self.init_pid, signal.SIGKILL)  # the kernel kills the whole PID namespace
            except (ProcessLookupError, TypeError):
                pass
            self._init.stdin.close()
            self._init.wait()
            self._init.stderr.close()
            self._init = None
        for p in self._procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        self._procs = []

    def __repr__(self):
        return "Host(%s, %s, init %s)" % (self.name, self.addr, self.init_pid)


class Hosts:
    """`with Hosts(("a", "b"), spool_size="8M") as hosts:` — hosts["a"], ...;
    spool_size is one size for every host, or a dict name -> size (tmpfs
    syntax: "4M"). `ssh_env` is set in every ssh session (sshd SetEnv); by
    default PATH starts with the build's bin directory, so `ssh b ckpt ...` runs
    this build's ckpt."""

    def __init__(self, names=("a", "b"), spool_size=None, ssh_env=None):
        names = list(names)
        if not 1 <= len(names) <= 4 or len(set(names)) != len(names):
            raise ValueError("hosts: 1 to 4 distinct names, got %r" % (names,))
        for n in names:
            if not re.fullmatch(r"[a-z][a-z0-9]{0,5}", n):
                raise ValueError("hosts: a host name is a lower-case letter and up to 5 letters or digits, got %r" % n)
        self.names = names
        self.spool_size = spool_size if isinstance(spool_size, dict) else {n: spool_size for n in names}
        if ssh_env is None:
            ssh_env = {"PATH": ckpttest.BIN + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
        self.ssh_env = ssh_env
        rng = random.SystemRandom()
        self.run_id = "%06x" % rng.getrandbits(24)
        self.subnet = _free_subnet(rng)
        self.dir = None
        self.spool = None
        self.hosts = {n: Host(self, n, str(self.subnet[11 + i])) for i, n in enumerate(names)}
        self.ssh_config = None
        self.ssh_command = None
        self._switch = None
        self.switch_pid = None
        self._old_sigterm = None

    def __getitem__(self, name):
        return self.hosts[name]

    def __iter__(self):
        return iter(self.hosts.values())

    def link_names(self):
        """The names of the interfaces this run made (in its switch namespace)."""
        return ["ck%s%s" % (self.run_id, n) for n in self.names] + ["ck%sbr" % self.run_id]

    def __enter__(self):
        why = unavailable()
        if why:
            raise HostsUnavailable(why)
        self._catch_sigterm()
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _catch_sigterm(self):
        """ctest ends a test that runs too long with SIGTERM: clean up then too."""
        try:
            if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
                self._old_sigterm = signal.signal(signal.SIGTERM, _sigterm)
        except ValueError:  # not the main thread
            pass

    def _start(self):
        self.dir = tempfile.mkdtemp(prefix="ckpt-hosts-%s-" % self.run_id)
        self.spool = os.path.join(self.dir, "spool")
        os.mkdir(self.spool)
        self._start_switch()
        for i, h in enumerate(self):
            h.spool = self.spool
            h._start()
            self._plug(h, self.link_names()[i])
            h._setup(self.subnet, self.spool_size.get(h.name))
        self._write_ssh_files()
        for h in self:
            h.sshd_log = os.path.join(self.dir, "sshd.%s.log" % h.name)
            pidfile = os.path.join(self.dir, "sshd.%s.pid" % h.name)
            h._start_sshd(os.path.join(self.dir, "sshd_config." + h.name), pidfile, h.sshd_log)

    def _start_switch(self):
        self._switch = subprocess.Popen(["unshare", "--net", sys.executable, "-c", INIT], stdin=subprocess.PIPE,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        me = os.readlink("/proc/self/ns/net")
        while True:  # unshare execs python once it has its own namespace
            try:
                if os.readlink("/proc/%d/ns/net" % self._switch.pid) != me:
                    break
            except OSError:
                pass
            if self._switch.poll() is not None or time.monotonic() > deadline:
                raise HostsUnavailable("hosts: cannot make the switch namespace")
            time.sleep(0.001)
        self.switch_pid = self._switch.pid
        br = self.link_names()[-1]
        self._in_switch(["ip", "link", "add", br, "type", "bridge"], "making the bridge")
        self._in_switch(["ip", "link", "set", br, "up"], "bringing the bridge up")

    def _in_switch(self, argv, what):
        return _sh(["nsenter", "-t", str(self.switch_pid), "-n", "--"] + argv, what)

    def _plug(self, host, link):
        br = self.link_names()[-1]
        self._in_switch(["ip", "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns",
                         str(host.init_pid)], "making the veth pair of host " + host.name)
        self._in_switch(["ip", "link", "set", link, "master", br, "up"], "plugging host %s in" % host.name)

    def _write_ssh_files(self):
        d = self.dir
        key = os.path.join(d, "id_ed25519")
        _sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ckpt-hosts-user", "-f", key], "ssh-keygen")
        shutil.copy(key + ".pub", os.path.join(d, "authorized_keys"))
        known, client = [], []
        for h in self:
            hk = os.path.join(d, "ssh_host_ed25519_key." + h.name)
            _sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ckpt-hosts-" + h.name, "-f", hk], "ssh-keygen")
            with open(hk + ".pub") as f:
                kind, blob = f.read().split()[:2]
            known.append("%s,%s %s %s\n" % (h.name, h.addr, kind, blob))
            setenv = " ".join('%s="%s"' % (k, v) for k, v in self.ssh_env.items())
            server = ["ListenAddress %s:22" % h.addr, "HostKey " + hk, "AuthorizedKeysFile " + d + "/authorized_keys",
                      "PermitRootLogin prohibit-password", "PasswordAuthentication no",
                      "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
                      "PidFile %s/sshd.%s.pid" % (d, h.name), "PrintMotd no", "PrintLastLog no", "UseDNS no",
                      "Subsystem sftp internal-sftp", "MaxStartups 100:30:200"]
            if setenv:
                server.append("SetEnv " + setenv)
            with open(os.path.join(d, "sshd_config." + h.name), "w") as f:
                f.write("\n".join(server) + "\n")
            client += ["Host %s %s" % (h.name, h.addr), "  HostName " + h.addr, "  HostKeyAlias " + h.name,
                       "  User root", "  Port 22", "  IdentityFile " + key, "  IdentitiesOnly yes",
                       "  UserKnownHostsFile " + d + "/known_hosts", "  GlobalKnownHostsFile /dev/null",
                       "  StrictHostKeyChecking yes", "  CheckHostIP no", "  UpdateHostKeys no", "  BatchMode yes",
                       "  LogLevel ERROR", "  ConnectTimeout 5", "  ControlMaster no", "  ControlPath none", ""]
        with open(os.path.join(d, "known_hosts"), "w") as f:
            f.writelines(known)
        self.ssh_config = os.path.join(d, "ssh_config")
        with open(self.ssh_config, "w") as f:
            f.write("\n".join(client))
        self.ssh_command = "ssh -F " + shlex.quote(self.ssh_config)

    def close(self):
        """Ends everything this run made; safe to call twice."""
        for h in self:
            h._stop()
        if self._switch is not None:
            self._switch.kill()
            self._switch.stdin.close()
            self._switch.wait()
            self._switch = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        if self._old_sigterm is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None


def _sigterm(signum, frame):
    raise SystemExit(128 + signum)


def selftest():
    """Runs tests/migrate/test_hosts.py, the test of this module."""
    import runpy
    here = os.path.dirname(os.path.abspath(__file__))
    runpy.run_path(os.path.join(here, "..", "migrate", "test_hosts.py"), run_name="__main__")


if __name__ == "__main__":
    if sys.argv[1:] == ["--selftest"]:
        selftest()
    else:
        print("usage: hosts.py --selftest", file=sys.stderr)
        sys.exit(2)
