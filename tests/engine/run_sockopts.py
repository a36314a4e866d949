#!/usr/bin/env python3
"""Datagram sockets keep the rest of their state across dumps and restores
(docs/engine.md, "Socket options"): an unmodified python3 process holds

- an IPv4 UDP socket on a multicast-capable device (a dummy interface of
  this test's own network namespace) that has joined 239.1.2.3 with source
  10.9.0.2 blocked and 232.1.1.1 from source 10.9.0.1 only, is bound to the
  device (SO_BINDTODEVICE), has SO_BROADCAST, a receive timeout, nanosecond
  timestamps, 8, 12, multicast TTL, loop and interface,
  path-MTU discovery and 11 set, and a classic BPF filter (locked)
  that drops datagrams starting with "X";
- an IPv6 UDP socket that has joined ff15::1234 on that device, with
  IPV6_MULTICAST_HOPS and IPV6_RECVPKTINFO, and a dual-stack one that has
  joined the IPv4 group 239.1.2.4;
- a Unix socket pair with a receive timeout and a peek offset.

It writes every datagram it receives with what the ancillary data said, and
a report of all those options when asked. The test sends, before the first
dump and after each of two restores, datagrams that must arrive (the group,
the included source, the IPv6 group) and ones the kernel must drop (the
filter, the blocked source, a source not included): the received set and
the report must be the same every time.

  run_sockopts.py CKPT
"""
import faulthandler
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import ckpttest  # noqa: E402

CKPT = sys.argv[1]
if os.environ.get("CKPT_SOCKOPTS_NETNS") != "1":
    # A network namespace of our own: only the devices and addresses this test makes.
    os.execvpe("unshare", ["unshare", "-n", sys.executable] + sys.argv,
               dict(os.environ, CKPT_SOCKOPTS_NETNS="1"))
for cmd in (["ip", "link", "set", "lo", "up"], ["ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1"], ["ip", "link", "set", "d1", "up"],
            ["ip", "link", "set", "d0", "multicast", "on", "up"],
            ["ip", "addr", "add", "10.9.0.1/24", "dev", "d0"], ["ip", "addr", "add", "10.9.0.2/24", "dev", "d0"],
            ["ip", "-6", "addr", "add", "fd09::1/64", "dev", "d0", "nodad"]):
    subprocess.run(cmd, check=True)
faulthandler.dump_traceback_later(240, exit=True)
IFX = socket.if_nametoindex("d0")
W = tempfile.mkdtemp(prefix="ckpt-sockopts.")
OUT = os.path.join(W, "out")

SERVER = r'''
import ctypes, select, socket, struct, sys
from socket import *
IFX = if_nametoindex("d0")
m = socket(AF_INET, SOCK_DGRAM)
m.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
m.bind(("0.0.0.0", 5500))
m.setsockopt(IPPROTO_IP, IP_ADD_MEMBERSHIP, struct.pack("4s4si", inet_aton("239.1.2.3"), inet_aton("0.0.0.0"), IFX))
m.setsockopt(IPPROTO_IP, 38, inet_aton("239.1.2.3") + inet_aton("10.9.0.1") + inet_aton("10.9.0.2"))  # IP_BLOCK_SOURCE
m.setsockopt(IPPROTO_IP, 39, inet_aton("232.1.1.1") + inet_aton("10.9.0.1") + inet_aton("10.9.0.1"))  # IP_ADD_SOURCE_MEMBERSHIP
m.setsockopt(SOL_SOCKET, SO_BROADCAST, 1)
m.setsockopt(SOL_SOCKET, SO_RCVTIMEO, struct.pack("qq", 7, 500000))
m.setsockopt(SOL_SOCKET, SO_BINDTODEVICE, b"d0")
m.setsockopt(SOL_SOCKET, 35, 1)  # SO_TIMESTAMPNS
m.setsockopt(IPPROTO_IP, 8, 1)
m.setsockopt(IPPROTO_IP, 12, 1)
m.setsockopt(IPPROTO_IP, IP_MULTICAST_TTL, 5)
m.setsockopt(IPPROTO_IP, IP_MULTICAST_LOOP, 0)
m.setsockopt(IPPROTO_IP, IP_MULTICAST_IF, inet_aton("10.9.0.1"))
m.setsockopt(IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER: IP_PMTUDISC_DO
m.setsockopt(IPPROTO_IP, 11, 1)
# Classic BPF: ldb [8] (the first payload byte after the UDP header); == 'X' -> drop, else accept.
insns = struct.pack("HBBI" * 4, 0x30, 0, 0, 8, 0x15, 0, 1, ord("X"), 0x06, 0, 0, 0, 0x06, 0, 0, 0xFFFFFFFF)
buf = ctypes.create_string_buffer(insns)
m.setsockopt(SOL_SOCKET, 26, struct.pack("@HP", 4, ctypes.addressof(buf)))  # SO_ATTACH_FILTER
m.setsockopt(SOL_SOCKET, 44, 1)  # SO_LOCK_FILTER
m6 = socket(AF_INET6, SOCK_DGRAM)
m6.setsockopt(IPPROTO_IPV6, IPV6_V6ONLY, 1)
m6.bind(("::", 5501))
m6.setsockopt(IPPROTO_IPV6, IPV6_JOIN_GROUP, inet_pton(AF_INET6, "ff15::1234") + struct.pack("i", IFX))
m6.setsockopt(IPPROTO_IPV6, IPV6_MULTICAST_HOPS, 7)
m6.setsockopt(IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
ds = socket(AF_INET6, SOCK_DGRAM)  # dual-stack: an IPv4 group on an IPv6 socket
ds.setsockopt(IPPROTO_IPV6, IPV6_V6ONLY, 0)
ds.bind(("::", 5502))
ds.setsockopt(IPPROTO_IP, IP_ADD_MEMBERSHIP, struct.pack("4s4si", inet_aton("239.1.2.4"), inet_aton("0.0.0.0"), IFX))
a, b = socketpair()
a.setsockopt(SOL_SOCKET, SO_RCVTIMEO, struct.pack("qq", 3, 500000))
a.setsockopt(SOL_SOCKET, 42, 3)  # SO_PEEK_OFF
def report():
    g = m.getsockopt
    v = [g(SOL_SOCKET, SO_BROADCAST), g(SOL_SOCKET, SO_RCVTIMEO, 16).hex(),
         g(SOL_SOCKET, SO_BINDTODEVICE, 16).rstrip(b"\0").decode(), g(SOL_SOCKET, 35),
         g(IPPROTO_IP, 8), g(IPPROTO_IP, 12), g(IPPROTO_IP, IP_MULTICAST_TTL),
         g(IPPROTO_IP, IP_MULTICAST_LOOP), inet_ntoa(g(IPPROTO_IP, IP_MULTICAST_IF, 4)), g(IPPROTO_IP, 10),
         g(IPPROTO_IP, 11), len(g(SOL_SOCKET, 26, 256)), g(SOL_SOCKET, 44),
         m6.getsockopt(IPPROTO_IPV6, IPV6_MULTICAST_HOPS), m6.getsockopt(IPPROTO_IPV6, IPV6_RECVPKTINFO),
         a.getsockopt(SOL_SOCKET, SO_RCVTIMEO, 16).hex(), a.getsockopt(SOL_SOCKET, 42)]
    return " ".join(str(x) for x in v)
def describe(s, data, anc, src):
    info = []
    for level, kind, d in anc:
        if level == IPPROTO_IP and kind == 8:
            info.append("if=%d" % struct.unpack_from("i", d)[0])
        elif level == IPPROTO_IP and kind == IP_TTL:
            info.append("ttl")
        elif level == SOL_SOCKET and kind == 35:
            info.append("ts")
        elif level == IPPROTO_IPV6 and kind == IPV6_PKTINFO:
            info.append("if=%d" % struct.unpack_from("16si", d)[1])
    name = "m6" if s is m6 else "d" if s is ds else "m"
    return "%s %s from %s %s" % (name, data.decode(), src[0], " ".join(sorted(info)))
print("ready", flush=True)
while True:
    for s in select.select([m, m6, ds], [], [])[0]:
        data, anc, _, src = s.recvmsg(2048, 1024)
        if data == b"report":
            print("report " + report(), flush=True)
        else:
            print(describe(s, data, anc, src), flush=True)
'''

# What the server must report (see report()): broadcast, receive timeout 7.5 s (both representable in jiffies at any HZ), device, timestamps,
# pktinfo, recvttl, multicast TTL 5, loop off, interface 10.9.0.1, PMTUDISC_DO, recverr, a filter of
# 4 instructions, locked; IPv6 hops 7 and pktinfo; the Unix end's timeout 3.5 s and peek offset 3.
WANT_REPORT = ("1 070000000000000020a1070000000000 d0 1 1 1 5 0 10.9.0.1 2 1 4 1 7 1 "
               "030000000000000020a1070000000000 3")
failures = []


def fail(msg):
    print("FAIL: " + msg, flush=True)
    subprocess.run(["pkill", "-9", "-f", "--", "ckpt-sockopts-server"])
    shutil.rmtree(W, ignore_errors=True)
    sys.exit(1)


def senders():
    s1 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s1.bind(("10.9.0.1", 0))
    s1.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("10.9.0.1"))
    s2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s2.bind(("10.9.0.2", 0))
    s2.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("10.9.0.2"))
    s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, IFX)
    return s1, s2, s6


def exchange(tag):
    """Sends the datagrams of one round; returns the report and what arrived."""
    s1, s2, s6 = senders()
    start = len(open(OUT).read().splitlines())
    s1.sendto(b"report", ("239.1.2.3", 5500))
    s1.sendto(b"a-" + tag, ("239.1.2.3", 5500))        # the group: arrives
    s1.sendto(b"Xdrop-" + tag, ("239.1.2.3", 5500))    # the filter drops it
    s2.sendto(b"b-" + tag, ("239.1.2.3", 5500))        # source 10.9.0.2 is blocked
    s2.sendto(b"c-" + tag, ("232.1.1.1", 5500))        # not the included source
    s1.sendto(b"d-" + tag, ("232.1.1.1", 5500))        # the included source: arrives
    s6.sendto(b"e-" + tag, ("ff15::1234", 5501, 0, IFX))  # the IPv6 group: arrives
    s1.sendto(b"f-" + tag, ("239.1.2.4", 5502))        # the IPv4 group of the IPv6 socket: arrives
    time.sleep(0.2)
    s1.sendto(b"end-" + tag, ("239.1.2.3", 5500))
    for _ in range(500):
        lines = open(OUT).read().splitlines()[start:]
        if any(line.startswith("m end-" + tag.decode() + " ") for line in lines):
            break
        time.sleep(0.02)
    else:
        fail("round %s: the server never received its end marker; it wrote %r" % (tag, lines))
    reports = [line[len("report "):] for line in lines if line.startswith("report ")]
    got = sorted(line.replace(tag.decode(), "T") for line in lines if not line.startswith("report "))
    return (reports[0] if reports else None), got


WANT_GOT = sorted(["m a-T from 10.9.0.1 if=%d ts ttl" % IFX, "m d-T from 10.9.0.1 if=%d ts ttl" % IFX,
                   "m6 e-T from fd09::1 if=%d" % IFX, "d f-T from ::ffff:10.9.0.1 ", "m end-T from 10.9.0.1 if=%d ts ttl" % IFX])


def main():
    out = open(OUT, "w")
    server = subprocess.Popen([sys.executable, "-c", SERVER, "ckpt-sockopts-server"], stdout=out,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, close_fds=True)
    for _ in range(500):
        if "ready" in open(OUT).read():
            break
        if server.poll() is not None:
            fail("the server ended: %s" % open(OUT).read())
        time.sleep(0.02)
    pid = server.pid
    report, got = exchange(b"r0")
    if report != WANT_REPORT or got != WANT_GOT:
        fail("before any dump: report %r (expected %r), received %r (expected %r)" %
             (report, WANT_REPORT, got, WANT_GOT))
    print("ok   before any dump: %s; received %s" % (report, got), flush=True)
    img = os.path.join(W, "img")
    for rnd in (1, 2):
        pid = ckpttest.dump_and_restore(CKPT, pid, img, "restore %d" % rnd, fail, server if rnd == 1 else None)
        report, got = exchange(b"r%d" % rnd)
        if report != WANT_REPORT:
            fail("after restore %d the report is %r, expected %r" % (rnd, report, WANT_REPORT))
        if got != WANT_GOT:
            fail("after restore %d the server received %r, expected %r" % (rnd, got, WANT_GOT))
        print("ok   restore %d: the same options, groups, source filters and socket filter" % rnd, flush=True)
    r = subprocess.run([CKPT, "inspect", img], capture_output=True, text=True)
    line = [x for x in r.stdout.splitlines() if "239.1.2.3" in x]
    if not line or "member of 239.1.2.3 on d0, not from 10.9.0.2" not in line[0] or "a socket filter" not in line[0]:
        fail("ckpt inspect does not show the groups and the filter: %r" % r.stdout)
    print(line[0].strip())
    subprocess.run(["kill", "-9", str(pid)])
    shutil.rmtree(W, ignore_errors=True)
    print("PASS: multicast memberships, source filters, a classic socket filter and %d socket options kept "
          "across two restores" % len(WANT_REPORT.split()))


main()
