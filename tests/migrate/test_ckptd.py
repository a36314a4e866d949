#!/usr/bin/env python3
"""ckptd and the ckpt:// transport (mutual TLS), between hosts a and b
(tests/lib/hosts.py). Certificates are made here with the openssl CLI in a
temporary directory: a CA, the daemon's certificate (for b's address and
name), an allowed client, a client of a subject the config does not list, a
client signed by another CA. ckptd runs in b; tests/migrate/net_client (a
small client built from src/net) connects from a.

Checks: --check-config accepts a good file and names the line of a bad one;
the allowed client is served (its HELLO reaches the receiving side, which
answers from the daemon's program map, and a whole heat migration resumes
with the uninterrupted run's result); a client without a certificate, with
one the CA did not sign, with a subject the config does not allow, or
speaking plain TCP, is refused — and the daemon serves the next client; a
daemon whose certificate names another host is refused by the client;
insecure_no_tls works only when asked and warns; SIGTERM stops ckptd (0).
Skipped (77) where hosts cannot be made."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

LIB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib")
sys.path.insert(0, LIB)
import ckpttest as ck  # noqa: E402
import hosts as H  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_migrate as TM  # noqa: E402

CKPTD = os.path.join(ck.BIN, "ckptd")
CLIENT = os.path.join(ck.BIN, "net_client")
HEAT = os.path.join(ck.BIN, "heat")
PORT = 7070


def openssl(*args, cwd):
    p = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, text=True)
    ck.check(p.returncode == 0, "openssl %s failed: %s" % (" ".join(args), p.stderr))


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            name + ".key", "-out", name + ".pem", "-days", "2", "-subj", "/O=ckpt-test/CN=" + name, "-addext",
            "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)


def make_cert(d, name, subject, ca, usage, san=None):
    """NAME.pem/NAME.key signed by CA (a make_ca name)."""
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            name + ".key", "-out", name + ".csr", "-subj", subject, cwd=d)
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=%s\n" % usage)
        if san:
            f.write("subjectAltName=%s\n" % san)
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key", "-set_serial",
            str(int.from_bytes(os.urandom(8), "big")), "-days", "2", "-out", name + ".pem", "-extfile",
            name + ".ext", cwd=d)


def make_pki(d, b_addr):
    make_ca(d, "ca")
    make_ca(d, "rogue-ca")
    make_cert(d, "server", "/CN=b", "ca", "serverAuth", "DNS:b,DNS:localhost,IP:" + b_addr)
    make_cert(d, "other-server", "/CN=other", "ca", "serverAuth", "DNS:other,IP:10.255.255.1")
    make_cert(d, "node-a", "/O=ckpt-test/CN=node-a", "ca", "clientAuth")
    make_cert(d, "stranger", "/O=ckpt-test/CN=stranger", "ca", "clientAuth")
    make_cert(d, "rogue", "/O=ckpt-test/CN=node-a", "rogue-ca", "clientAuth")  # the allowed name, wrong CA


def tls_args(d, who, ca="ca"):
    return ["--cert", os.path.join(d, who + ".pem"), "--key", os.path.join(d, who + ".key"), "--ca",
            os.path.join(d, ca + ".pem")]


def write_config(path, body):
    with open(path, "w") as f:
        f.write(body)
    return path


def base_config(d, spool, work, port=PORT, server="server", extra=""):
    return """# ckptd test configuration
listen = *:{port}
spool = {spool}
cert = {d}/{server}.pem
key = {d}/{server}.key
ca = {d}/ca.pem
workdir = {work}
{extra}
[program heat]
command = {heat}

[peer "CN=node-a, O=ckpt-test"]
allow = program
""".format(port=port, spool=spool, d=d, server=server, work=work, heat=HEAT, extra=extra)


class Daemon:
    """ckptd --config CONF in `host`, its log in a file."""

    def __init__(self, host, conf, log):
        self.log_path = log
        with open(log, "wb") as f:
            self.proc = host.popen([CKPTD, "--config", conf], stdin=subprocess.DEVNULL, stdout=f,
                                   stderr=subprocess.STDOUT, env=TM.env())
        self.wait_log("listening on", 20)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def wait_log(self, text, timeout=20, count=1):
        deadline = time.monotonic() + timeout
        while self.log().count(text) < count:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                ck.fail("ckptd: no %r (x%d) in its log (exit %s):\n%s" % (text, count, self.proc.poll(), self.log()))
            time.sleep(0.05)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            ck.fail("ckptd did not stop on SIGTERM:\n" + self.log())
        ck.check(rc == 0 and "stopping on SIGTERM" in self.log(), "ckptd ended %s on SIGTERM:\n%s" % (rc, self.log()))


def client(host, url, args, verb, *rest):
    p = host.run([CLIENT, url] + args + [verb] + list(rest), capture_output=True, text=True, timeout=180)
    return p.returncode, (p.stdout + p.stderr).strip()


def check_config_errors(d, spool, work):
    good = write_config(os.path.join(d, "good.conf"), base_config(d, spool, work))
    p = ck.run([CKPTD, "--check-config", good])
    ck.check(p.returncode == 0 and "ok (mutual TLS, 1 programs, 1 peers)" in p.stdout,
             "--check-config of a good file: %d %s%s" % (p.returncode, p.stdout, p.stderr))
    base = base_config(d, spool, work)
    cases = [
        (base.replace("workdir =", "work_dir ="), ":7: unknown key 'work_dir'"),
        (base.replace("cert = %s/server.pem\n" % d, ""), "cert, key and ca are required"),
        (base.replace("ca = %s/ca.pem" % d, "ca = %s/missing.pem" % d), "ca = %s/missing.pem" % d),
        (base.replace("allow = program", "allow = program, everything"), ":13: allow: 'everything' is not one"),
        (base.replace("[program heat]", "[programme heat]"), ":9: unknown section [programme heat]"),
        (base.replace("command = " + HEAT, "command = /nonexistent/heat"), "/nonexistent/heat is not an executable"),
        (base.replace("listen = *:%d" % PORT, "listen = 7070"), ":2: listen wants ADDRESS:PORT"),
        (base.replace('[peer "CN=node-a, O=ckpt-test"]\nallow = program\n', ""), "no [peer \"SUBJECT\"] section"),
        (base.replace("key = %s/server.key" % d, "key = %s/node-a.key" % d), "does not belong to certificate"),
        ("insecure_no_tls = maybe\n" + base, ":1: 'maybe' is not true or false"),
        (base + "spool = /elsewhere\n", ":14: unknown key 'spool' in [peer \"CN=node-a, O=ckpt-test\"]"),
    ]
    for i, (text, want) in enumerate(cases):
        path = write_config(os.path.join(d, "bad%d.conf" % i), text)
        p = ck.run([CKPTD, "--check-config", path])
        ck.check(p.returncode == 2 and want in p.stderr,
                 "bad config %d: want exit 2 and %r, got %d: %s%s\n---\n%s" % (i, want, p.returncode, p.stdout,
                                                                            p.stderr, text))


def heat_image(d):
    """An image of heat stopped mid-run, and the uninterrupted run's result."""
    ref = ck.result_line(ck.run([HEAT, 96, 300, "--ckpt-no-listen"], check=0).stdout)
    src = os.path.join(d, "heat-src")
    os.mkdir(src)
    ck.run([HEAT, 96, 300, "--ckpt-dir", src, "--ckpt-stop-at", 70, "--ckpt-no-listen"], check=75, cwd=src)
    return ck.newest_image(src), ref


def check_served(hosts, d, daemon, work):
    a, b = hosts["a"], hosts["b"]
    url = "ckpt://%s:%d" % (b.addr, PORT)
    me = tls_args(d, "node-a")
    # The allowed peer reaches the receiving side, which answers from the daemon's map.
    rc, out = client(a, url, me, "hello", "program", "nosuch")
    ck.check(rc == 1 and "program 'nosuch' is not available on b" in out and "program map has no entry" in out,
             "hello for an unmapped program: %d %s" % (rc, out))
    rc, out = client(a, url, me, "hello", "process", "x")
    ck.check(rc == 1 and "does not take process migrations from peer CN=node-a,O=ckpt-test" in out,
             "a kind the peer may not send: %d %s" % (rc, out))
    # By name too (the certificate names b and localhost): from b itself.
    rc, out = client(b, "ckpt://localhost:%d" % PORT, me, "hello", "program", "nosuch")
    ck.check(rc == 1 and "is not available on b" in out, "ckpt://localhost from b: %d %s" % (rc, out))
    # A whole program migration: heat resumes on b from the image that crossed over TLS.
    image, ref = heat_image(d)
    rc, out = client(a, url, me, "migrate", image, "heat", "/nonexistent-on-b")
    out_file = os.path.join(work, "heat.out")
    ck.check(rc == 0 and '"host":"b"' in out, "migration over ckpt://: %d %s" % (rc, out))
    deadline = time.monotonic() + 60
    got = None
    while time.monotonic() < deadline and got is None:
        if os.path.exists(out_file):
            got = ck.result_line_or_none(open(out_file).read())
        time.sleep(0.1)
    ck.check(got == ref, "heat resumed on b: result %r, the uninterrupted run: %r" % (got, ref))
    ck.check(not ck.spool_entries(b.path(hosts.spool + "/in")), "spool entries left: %s" % ck.spool_entries(b.path(hosts.spool + "/in")))


def check_refusals(hosts, d, daemon):
    a, b = hosts["a"], hosts["b"]
    url = "ckpt://%s:%d" % (b.addr, PORT)
    refused = 0
    # A subject the config does not list: an ERROR naming it, after the handshake.
    rc, out = client(a, url, tls_args(d, "stranger"), "hello", "program", "heat")
    ck.check(rc == 1 and "authorisation" in out and "does not allow peer CN=stranger,O=ckpt-test" in out,
             "a stranger's certificate: %d %s" % (rc, out))
    daemon.wait_log("refused %s:" % a.addr)
    # A certificate another CA signed (with the allowed subject).
    rc, out = client(a, url, tls_args(d, "rogue"), "hello", "program", "heat")
    ck.check(rc == 1 and "refused the TLS connection" in out, "a rogue CA's certificate: %d %s" % (rc, out))
    refused += 1
    daemon.wait_log("refused a connection", count=refused)
    ck.check("certificate verify failed" in daemon.log(), "ckptd's log lacks the reason:\n" + daemon.log())
    # No certificate at all (openssl s_client presents none).
    p = a.run(["openssl", "s_client", "-connect", "%s:%d" % (b.addr, PORT), "-CAfile", os.path.join(d, "ca.pem"),
               "-verify_return_error", "-tls1_3"], input="hello\n", capture_output=True, text=True, timeout=60)
    refused += 1
    daemon.wait_log("refused a connection", count=refused)
    ck.check("peer did not return a certificate" in daemon.log(), "no certificate: ckptd says\n" + daemon.log())
    # No certificate, from our client: it will not even try.
    rc, out = client(a, url, ["--ca", os.path.join(d, "ca.pem")], "hello", "program", "heat")
    ck.check(rc == 1 and "needs --cert, --key and --ca (or --insecure-no-tls); missing --cert, --key" in out,
             "client without --cert/--key: %d %s" % (rc, out))
    # Plain TCP to the TLS daemon.
    rc, out = client(a, url, ["--insecure-no-tls"], "hello", "program", "heat")
    ck.check(rc == 1, "plain TCP to a TLS daemon was answered: " + out)
    refused += 1
    daemon.wait_log("refused a connection", count=refused)
    # The client checks the daemon's certificate against its CA: one from another CA is refused.
    rc, out = client(a, url, tls_args(d, "node-a", ca="rogue-ca"), "hello", "program", "nosuch")
    ck.check(rc == 1 and "certificate verify failed" in out, "client trusting another CA: %d %s" % (rc, out))
    refused += 1
    daemon.wait_log("refused a connection", count=refused)
    # After all that, the allowed client is still served.
    rc, out = client(a, url, tls_args(d, "node-a"), "hello", "program", "nosuch")
    ck.check(rc == 1 and "is not available on b" in out, "the daemon no longer serves: %d %s" % (rc, out))


def check_wrong_name(hosts, d, spool, work):
    """A daemon whose certificate names another host: the client refuses it."""
    a, b = hosts["a"], hosts["b"]
    conf = write_config(os.path.join(d, "other.conf"),
                        base_config(d, spool, work, port=PORT + 1, server="other-server"))
    daemon = Daemon(b, conf, os.path.join(d, "ckptd-other.log"))
    rc, out = client(a, "ckpt://%s:%d" % (b.addr, PORT + 1), tls_args(d, "node-a"), "hello", "program", "nosuch")
    ck.check(rc == 1 and "certificate verify failed" in out and "IP address mismatch" in out,
             "a certificate for another address: %d %s" % (rc, out))
    rc, out = client(b, "ckpt://localhost:%d" % (PORT + 1), tls_args(d, "node-a"), "hello", "program", "nosuch")
    ck.check(rc == 1 and "certificate verify failed" in out and "hostname mismatch" in out,
             "a certificate for another name: %d %s" % (rc, out))
    daemon.stop()


def check_insecure(hosts, d, spool, work):
    a, b = hosts["a"], hosts["b"]
    text = base_config(d, spool, work, port=PORT + 2).replace('"CN=node-a, O=ckpt-test"', '"*"')
    text = "\n".join(l for l in text.splitlines() if not l.startswith(("cert", "key", "ca "))) + "\n"
    p = ck.run([CKPTD, "--check-config", write_config(os.path.join(d, "insecure0.conf"), text)])
    ck.check(p.returncode == 2 and "cert, key and ca are required" in p.stderr, "no TLS without asking: " + p.stderr)
    conf = write_config(os.path.join(d, "insecure.conf"), "insecure_no_tls = true\n" + text)
    daemon = Daemon(b, conf, os.path.join(d, "ckptd-insecure.log"))
    ck.check("WARNING: insecure_no_tls" in daemon.log(), "no warning:\n" + daemon.log())
    url = "ckpt://%s:%d" % (b.addr, PORT + 2)
    rc, out = client(a, url, ["--insecure-no-tls"], "hello", "program", "nosuch")
    ck.check(rc == 1 and "is not available on b" in out, "plain TCP daemon: %d %s" % (rc, out))
    rc, out = client(a, url, tls_args(d, "node-a"), "hello", "program", "nosuch")
    ck.check(rc == 1 and "is not available" not in out, "TLS client served by a plain daemon: " + out)
    daemon.stop()


def zombies_of(pid):
    """Zombie children of process `pid` (PIDs as this test sees them)."""
    out = []
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            stat = open("/proc/%s/stat" % e).read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] == "Z" and int(fields[1]) == pid:
            out.append(int(e))
    return out


def cli_migrate(hosts, d, who, pid, expect):
    """`ckpt migrate PID --to ckpt://b:PORT2` from host a with WHO's certificate."""
    url = "ckpt://%s:%d" % (hosts["b"].addr, PORT + 1)
    argv = [TM.CKPT, "migrate", str(pid), "--to", url, "--json"] + tls_args(d, who)
    p = hosts["a"].run(argv, capture_output=True, text=True, timeout=180, env=TM.env())
    ck.check(p.returncode == expect, "%s exited %d, want %d:\n%s\n%s" % (" ".join(argv), p.returncode, expect,
                                                                        p.stdout, p.stderr))
    return p


def check_migrate_cli(hosts, d, spool, work):
    """ckpt migrate --to ckpt://: a ckpt program and an unmodified process (engine) move to b; a stranger's
    certificate is refused and the source runs on to the right result."""
    conf = base_config(d, spool, work, port=PORT + 1).replace("allow = program", "allow = program, process")
    daemon = Daemon(hosts["b"], write_config(os.path.join(d, "ckptd-cli.conf"), conf), os.path.join(d, "cli.log"))
    a, b = hosts["a"], hosts["b"]
    ref = TM.reference()
    for f in ("heat.out", "heat.err", "source.out", "source.err"):
        if os.path.exists(os.path.join(work, f)):
            os.remove(os.path.join(work, f))
    src = TM.start_heat(a, work)
    p = cli_migrate(hosts, d, "node-a", src.ns_pid, 0)
    j = json.loads(p.stdout)
    ck.check(j["host"] == "b" and j["kind"] == "program", "migrate over ckpt:// said %s" % p.stdout)
    ck.check(src.wait(timeout=30) == 75, "the source heat did not exit 75")
    got = TM.result_on(work)
    ck.check(got == [ref], "heat over ckpt://: %s, uninterrupted %s" % (got, ref))
    os.remove(os.path.join(work, "heat.out"))
    # heat ended on b as the daemon's child: the daemon collects it (no zombie).
    TM.wait_for(lambda: not zombies_of(daemon.proc.host_pid), "ckptd to collect its ended children", 10)
    # An unmodified process: the engine's image over TLS.
    log = os.path.join(work, "counter.log")
    proc = TM.start_at_pid(a, ["python3", "-c", TM.COUNTER, log], 21000, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    TM.wait_for(lambda: os.path.exists(log) and os.path.getsize(log) > 10, "the counter to start")
    p = cli_migrate(hosts, d, "node-a", proc.ns_pid, 0)
    j = json.loads(p.stdout)
    ck.check(j["kind"] == "process" and j["pid"] == proc.ns_pid, "process over ckpt:// said %s" % p.stdout)
    before = TM.check_counter(log)
    TM.wait_for(lambda: TM.check_counter(log) > before + 20, "the counter to go on in b")
    ck.check(TM.alive(b, proc.ns_pid) and not TM.alive(a, proc.ns_pid), "the counter is not (only) in b")
    b.run(["kill", "-9", str(proc.ns_pid)])
    # Refused while the source runs: a subject the config does not allow, a certificate another CA signed,
    # no certificate at all. The source runs on to the right result.
    src = TM.start_heat(a, work)
    p = cli_migrate(hosts, d, "stranger", src.ns_pid, 1)
    ck.check("does not allow peer CN=stranger" in p.stderr and "runs on here as before" in p.stderr, p.stderr)
    p = cli_migrate(hosts, d, "rogue", src.ns_pid, 1)
    ck.check("runs on here as before" in p.stderr, "rogue CA: " + p.stderr)
    p = hosts["a"].run([TM.CKPT, "migrate", str(src.ns_pid), "--to", "ckpt://%s:%d" % (b.addr, PORT + 1)],
                       capture_output=True, text=True, timeout=60, env=TM.env())
    ck.check(p.returncode != 0 and "needs --cert, --key and --ca" in p.stderr, "no certificate: " + p.stderr)
    ck.check(TM.alive(a, src.ns_pid), "the source is gone after the refusals")
    ck.check(src.wait(timeout=120) == 0, "the refused source did not finish")
    ck.check(ck.result_line(open(os.path.join(work, "source.out")).read().splitlines()[-1]) == ref,
             "the refused source's result is wrong")
    ck.check(not os.path.exists(os.path.join(work, "heat.out")), "a copy ran on b after the refusals")
    daemon.stop()


def main():
    H.skip_unless_available()
    for tool in (CKPTD, CLIENT, HEAT):
        if not os.path.exists(tool):
            print("SKIP: %s not built" % tool)
            sys.exit(ck.SKIP)
    if not shutil.which("openssl"):
        print("SKIP: no openssl CLI (Debian package openssl)")
        sys.exit(ck.SKIP)
    d = ck.tempdir("ckptd")
    try:
        with H.Hosts(("a", "b")) as hosts:
            b = hosts["b"]
            make_pki(d, b.addr)
            spool = hosts.spool + "/in"
            work = os.path.join(d, "work")
            os.mkdir(work)
            check_config_errors(d, spool, work)
            conf = write_config(os.path.join(d, "ckptd.conf"), base_config(d, spool, work))
            daemon = Daemon(b, conf, os.path.join(d, "ckptd.log"))
            check_served(hosts, d, daemon, work)
            check_migrate_cli(hosts, d, spool, work)
            check_refusals(hosts, d, daemon)
            check_wrong_name(hosts, d, spool, work)
            check_insecure(hosts, d, spool, work)
            daemon.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print("ok")


if __name__ == "__main__":
    main()
