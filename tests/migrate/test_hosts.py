#!/usr/bin/env python3
"""The test of tests/lib/hosts.py, the hosts of the migration tests: hosts a,
b and c (c with a 4M spool) reach each other with ssh through the generated
config (8 MiB stream intact; a full spool reported), have private spools, PIDs
and processes, and leave nothing behind.
Skipped (77) where hosts cannot be made; checks that the skip itself works."""
import os
import signal
import subprocess
import sys
import time

LIB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib")
sys.path.insert(0, LIB)
import ckpttest as ck  # noqa: E402
import hosts as H  # noqa: E402


def check_ssh(hosts):
    a, b, c = hosts["a"], hosts["b"], hosts["c"]
    script = "hostname; hostname -I; echo $$; grep ckpt-spool /proc/self/mountinfo"
    p = a.run(["ssh", "-F", hosts.ssh_config, "b", script], capture_output=True, text=True, timeout=30)
    ck.check(p.returncode == 0, "ssh a -> b failed (%d): %s%s" % (p.returncode, p.stdout, p.stderr))
    lines = p.stdout.split("\n")
    ck.check(lines[0] == "b", "ssh a -> b: hostname %r, want b" % lines[0])
    ck.check(lines[1].split() == [b.addr], "ssh a -> b: addresses %r, want %s" % (lines[1], b.addr))
    ck.check(int(lines[2]) < 1000, "ssh a -> b: shell pid %s is not in a fresh PID namespace" % lines[2])
    ck.check(hosts.spool in lines[3], "ssh a -> b: no spool mount in %r" % p.stdout)
    # ssh_command and url are what the migration CLI gets; this build's ckpt
    # comes first on the remote PATH.
    ck.check(b.url == "ssh://b", "b.url is %s" % b.url)
    p = c.run(hosts.ssh_command.split() + ["b", "command -v ckpt || echo none"], capture_output=True, text=True,
              timeout=30)
    ck.check(p.returncode == 0, "ssh c -> b failed: " + p.stderr)
    want = os.path.join(ck.BIN, "ckpt") if os.path.exists(os.path.join(ck.BIN, "ckpt")) else "none"
    ck.check(p.stdout.strip() == want, "ssh c -> b: ckpt is %r, want %r" % (p.stdout, want))
    # Host keys are checked: b's key is refused as c's.
    p = a.run(["ssh", "-F", hosts.ssh_config, "-o", "HostKeyAlias=c", "b", "true"], capture_output=True, text=True,
              timeout=30)
    ck.check(p.returncode == 255 and "HOST IDENTIFICATION HAS CHANGED" in p.stderr,
             "ssh accepted b's key as c's: %d %s" % (p.returncode, p.stderr))
    # The hosts are not reachable from outside (their own network namespaces).
    p = subprocess.run(hosts.ssh_command.split() + ["-o", "ConnectTimeout=1", "b", "true"], capture_output=True,
                       text=True, timeout=30)
    ck.check(p.returncode == 255, "host b is reachable from the root network namespace: " + p.stderr)


def check_spools(hosts):
    a, b, c = hosts["a"], hosts["b"], hosts["c"]
    spool = hosts.spool
    b.sh("echo hello-from-b > %s/f" % spool, check=True)
    ck.check(b.sh("cat %s/f" % spool).stdout == "hello-from-b\n", "b cannot read its spool")
    ck.check(a.sh("test -e %s/f" % spool).returncode == 1, "b's spool file is visible in a")
    ck.check(not os.listdir(spool), "b's spool file is visible outside the hosts")
    with open(b.path(spool + "/f")) as f:
        ck.check(f.read() == "hello-from-b\n", "b.path does not reach b's spool")
    ck.check(not os.path.exists(a.path(spool + "/f")), "a.path shows b's spool")
    # c's spool is 4M: dd fails with ENOSPC there; b's takes 16M.
    p = c.sh("dd if=/dev/zero of=%s/big bs=64k count=256" % spool)
    ck.check(p.returncode != 0 and "No space left on device" in p.stderr, "c's 4M spool did not fill: " + p.stderr)
    size = os.stat(c.path(spool + "/big")).st_size
    ck.check(3 << 20 <= size <= 4 << 20, "c's spool filled at %d bytes, want ~4M" % size)
    p = b.sh("dd if=/dev/zero of=%s/big bs=64k count=256" % spool)
    ck.check(p.returncode == 0, "b's spool (no limit) refused 16M: " + p.stderr)
    # /dev/shm is private too.
    b.sh("echo x > /dev/shm/ckpt-hosts-test", check=True)
    ck.check(a.sh("test -e /dev/shm/ckpt-hosts-test").returncode == 1, "b's /dev/shm is visible in a")
    ck.check(not os.path.exists("/dev/shm/ckpt-hosts-test"), "b's /dev/shm is visible outside")


def check_stream(hosts):
    """8 MiB of random bytes from a's spool over ssh into b's arrive intact; into
    c's 4M spool the remote side fails and ssh says so (what a migration to a
    full disk meets)."""
    a, spool = hosts["a"], hosts.spool
    a.sh("head -c 8M /dev/urandom > %s/img" % spool, check=True)
    want = a.sh("sha256sum < %s/img" % spool, check=True).stdout.split()[0]
    ssh = "%s b 'cat > %s/img && sha256sum < %s/img'" % (hosts.ssh_command, spool, spool)
    p = a.sh("%s < %s/img" % (ssh, spool), timeout=60)
    ck.check(p.returncode == 0 and p.stdout.split()[0] == want, "stream a -> b: %r %r" % (p.stdout, p.stderr))
    p = a.sh("%s c 'cat > %s/img' < %s/img" % (hosts.ssh_command, spool, spool), timeout=60)
    ck.check(p.returncode == 1 and "No space left on device" in p.stderr, "stream a -> c (full): %d %r" %
             (p.returncode, p.stderr))


def check_processes(hosts, pids):
    a, b, c = hosts["a"], hosts["b"], hosts["c"]
    pid = int(a.sh("echo $$", check=True).stdout)
    ck.check(1 < pid < 1000, "host a: shell pid %d, want a small one" % pid)
    ck.check(a.sh("ps -e -o comm=").stdout.split()[:2] == ["python3", "sshd"],
             "host a: processes other than its init and sshd: " + a.sh("ps -ef").stdout)
    bg = b.popen(["sleep", "1000"])
    ck.check(bg.host_pid and bg.ns_pid and bg.ns_pid < 1000 and bg.ns_pid != bg.host_pid,
             "popen in b: pids %s/%s" % (bg.host_pid, bg.ns_pid))
    ck.check(b.sh("kill -0 %d" % bg.ns_pid).returncode == 0, "b does not see its own process %d" % bg.ns_pid)
    ck.check(a.sh("kill -0 %d" % bg.host_pid).returncode != 0, "a sees b's process (host pid %d)" % bg.host_pid)
    ck.check(a.sh("kill -0 %d" % bg.ns_pid).returncode != 0, "a sees b's process (pid %d)" % bg.ns_pid)
    bg.terminate()  # reaches sleep itself, not just nsenter
    ck.check(bg.wait(10) == -signal.SIGTERM, "terminate() of a HostProcess: status %s" % bg.returncode)
    ck.check(not os.path.exists("/proc/%d" % bg.host_pid), "sleep survived terminate()")
    pids.append(c.popen(["sleep", "1000"]).host_pid)  # left running: killed at the end
    try:
        a.run(["sleep", "1000"], timeout=0.3)
        ck.fail("run(timeout) did not time out")
    except subprocess.TimeoutExpired:
        pass
    ck.check("sleep 1000" not in a.sh("ps -eo args").stdout, "run(timeout) left its process running in a")
    p = b.run(["pwd"], cwd=hosts.spool, capture_output=True, text=True, env={"X": "1"})
    ck.check(p.stdout == hosts.spool + "\n", "run(cwd=spool) ran in %r" % p.stdout)


def netns_holders(inodes):
    held = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.stat("/proc/%s/ns/net" % d).st_ino in inodes:
                    held.append(int(d))
            except OSError:
                pass
    return held


def check_skip():
    """Without root, hosts are unavailable: a clear message and ctest's skip code."""
    code = "import sys; sys.path.insert(0, %r); import hosts; hosts.skip_unless_available()" % LIB
    p = subprocess.run(["unshare", "--user", sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    ck.check(p.returncode == H.SKIP and "SKIP: hosts.py: needs root" in p.stdout,
             "unavailable hosts: exit %d, %r %r" % (p.returncode, p.stdout, p.stderr))


def main():
    H.skip_unless_available()
    t0 = time.monotonic()
    with H.Hosts(("a", "b", "c"), spool_size={"c": "4M"}) as hosts:
        run_dir, names = hosts.dir, hosts.link_names()
        pids = [h.init_pid for h in hosts] + [h.sshd.host_pid for h in hosts] + [hosts.switch_pid]
        netns = {os.stat("/proc/%d/ns/net" % p).st_ino for p in pids}
        print("hosts up in %.2f s: %s, subnet %s" % (time.monotonic() - t0, list(hosts), hosts.subnet))
        check_ssh(hosts)
        check_spools(hosts)
        check_stream(hosts)
        check_processes(hosts, pids)
    alive = [p for p in pids if os.path.exists("/proc/%d" % p)]
    ck.check(not alive, "processes of the hosts still alive: %s" % alive)
    held = netns_holders(netns)
    ck.check(not held, "processes still in the hosts' network namespaces: %s" % held)
    ck.check(not os.path.exists(run_dir), "temporary directory left: " + run_dir)
    listing = H._sh(["ip", "netns", "list"], "ip netns") + H._sh(["ip", "-o", "link"], "ip link")
    with open("/proc/self/mountinfo") as f:
        listing += f.read()
    for name in names + [os.path.basename(run_dir), "ckpt-spool", "ckpt-host-"]:
        ck.check(name not in listing, "%s left in ip netns/link or mounts" % name)
    check_skip()
    print("PASS: hosts in %.2f s" % (time.monotonic() - t0))


if __name__ == "__main__":
    main()
