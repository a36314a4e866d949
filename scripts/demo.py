#!/usr/bin/env python3
"""`make demo`: a computation starts on Linux x86-64, is checkpointed, resumes
as a Windows program under Wine, is checkpointed again, and finishes on
big-endian s390x under qemu — and its result equals the uninterrupted run.
Then one runs on a host and moves to another with `ckpt migrate` over ssh."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
B = os.path.join(ROOT, "build")
CKPT = os.path.join(B, "bin", "ckpt")
N, STEPS = "384", "1500"

BOLD, GREEN, RED, DIM, END = ("\033[1m", "\033[32m", "\033[31m", "\033[2m", "\033[0m") if sys.stdout.isatty() \
    else ("", "", "", "", "")


def run(cmd, cwd, ok=(0,)):
    env = dict(os.environ, WINEDEBUG="-all")
    # Output goes to files, not pipes: a Wine service started by this command
    # would inherit a pipe and hold it open (so a pipe reader would wait for
    # it) until the wineserver exits.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        rc = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err).returncode
        dt = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        p = subprocess.CompletedProcess(cmd, rc, out.read().decode(errors="replace"), err.read().decode(errors="replace"))
    if p.returncode not in ok:
        sys.exit("%sdemo failed%s: %s exited %d\n%s" % (RED, END, " ".join(cmd), p.returncode, p.stderr))
    return dt, p


def result(p):
    return [l for l in p.stdout.splitlines() if l.startswith("result")][0].strip()


def say(msg):
    print(msg, flush=True)


def migration_demo():
    """Step 5: `ckpt migrate` between two hosts (network, mount and PID namespaces with their own sshd)."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
    import hosts as H
    why = H.unavailable()
    if why:
        say("\n%s5.%s (skipped: two namespace hosts cannot be made here: %s)" % (BOLD, END, why))
        return
    heat = os.path.join(B, "bin", "heat")
    args = [N, str(int(STEPS) * 10)]
    ref = result(run([heat] + args + ["--ckpt-no-listen"], ROOT)[1])
    work = tempfile.mkdtemp(prefix="ckpt-demo-mig-")
    env = dict(os.environ, CKPT_RUNTIME_DIR="/run/ckpt")
    try:
        with H.Hosts(("a", "b"), ssh_env={"CKPT_RUNTIME_DIR": "/run/ckpt",
                                          "PATH": os.path.join(B, "bin") + ":/usr/bin:/bin"}) as hosts:
            a = hosts["a"]
            say("\n%s5.%s Two hosts on this machine (namespaces with their own network, PIDs and sshd): heat %s"
                " starts on host a," % (BOLD, END, " ".join(args)))
            with open(os.path.join(work, "a.out"), "wb") as out:
                src = a.popen([heat] + args, cwd=work, stdout=out, stderr=subprocess.DEVNULL, env=env,
                              stdin=subprocess.DEVNULL)
            deadline = time.time() + 20
            while not os.path.exists(a.path("/run/ckpt/%d.json" % src.ns_pid)) and time.time() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)
            cmd = [CKPT, "migrate", str(src.ns_pid), "--to", "ssh://b", "--ssh", hosts.ssh_command, "--json",
                   "--remote-spool", hosts.spool]
            say("   and moves to host b over ssh mid-run:  ckpt migrate %d --to ssh://b" % src.ns_pid)
            p = a.run(cmd, capture_output=True, text=True, timeout=120, env=env)
            if p.returncode != 0:
                sys.exit("%sdemo failed%s: ckpt migrate exited %d\n%s" % (RED, END, p.returncode, p.stderr))
            j = json.loads(p.stdout)
            say("   now pid %d on host %s; %.1f MiB sent, downtime %.0f ms, total %.0f ms; the source exited %d" % (
                j["pid"], j["host"], j["bytes_sent"] / 2**20, j["downtime_ms"], j["total_ms"], src.wait(30)))
            out_b = os.path.join(work, "heat.out")
            deadline = time.time() + 120
            got = None
            while got is None and time.time() < deadline:
                lines = [l for l in open(out_b).read().splitlines() if l.startswith("result")] \
                    if os.path.exists(out_b) else []
                got = lines[0] if lines else None
                time.sleep(0.1)
            say("   %s (on b)" % got)
            if got != ref:
                sys.exit("%sDIFFERENT%s after the migration:\n  %s\n  %s" % (RED + BOLD, END, got, ref))
            say("   %sIDENTICAL%s to the uninterrupted run." % (GREEN + BOLD, END))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    heat = os.path.join(B, "bin", "heat")
    heat_win = os.path.join(B, "windows-x64", "bin", "heat.exe")
    heat_s390 = os.path.join(B, "linux-s390x", "bin", "heat")
    for f in (heat, heat_win, heat_s390):
        if not os.path.exists(f):
            sys.exit("missing %s: run `make demo` (it builds everything)" % f)
    # Start the wineserver ourselves, detached from our pipes: one started by a
    # `wine` whose output we capture would hold those pipes open until it exits.
    subprocess.run(["wineserver", "-p60"], check=False, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    # Wine's own services (explorer, services.exe, ...) start with the first
    # Windows program; start them now, so that step 3 times heat.exe itself.
    t0 = time.perf_counter()
    subprocess.run(["wine", "cmd.exe", "/c", "exit"], check=False, env=dict(os.environ, WINEDEBUG="-all"),
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wine_start = time.perf_counter() - t0
    work = tempfile.mkdtemp(prefix="ckpt-demo-")
    try:
        say("%sckpt demo%s: one computation, three platforms, one result\n" % (BOLD, END))
        say("The program: examples/heat.cc, 2-D heat diffusion on a %sx%s grid of doubles for %s steps," % (N, N, STEPS))
        say("with random heat sources from std::mt19937_64. Its state is registered with ckpt::Session.\n")
        dt, p = run([heat, N, STEPS], work)
        ref = result(p)
        say("%s1.%s Uninterrupted run on Linux x86-64, for reference (%.2f s):\n   %s\n" % (BOLD, END, dt, ref))

        third = str(int(STEPS) // 3)
        rows = []
        dt, p = run([heat, N, STEPS, "--ckpt-dir", ".", "--ckpt-stop-at", third], work, ok=(75,))
        img1 = sorted(f for f in os.listdir(work) if f.endswith(".ckpt"))[-1]
        rows.append(("Linux x86-64", "native", "0 -> %s" % third, dt, img1))
        say("%s2.%s Linux x86-64 runs steps 0-%s, then checkpoints and stops (%.2f s)." % (BOLD, END, third, dt))
        j = json.loads(run([CKPT, "inspect", "--json", img1], work)[1].stdout)
        m = j["meta"]
        say("   %s: %s %s, %s-endian, long=%s bytes; %d variables:" % (
            img1, m["producer.os"], m["producer.cpu"], m["producer.endian"],
            m["producer.widths"].split("long=")[1].split()[0], len(j["variables"])))
        for v in j["variables"]:
            say("     %-14s %-36s %10d bytes" % (v["name"], v["type"], v["raw_bytes"]))
        say("")

        dt, p = run(["wine", heat_win, "--ckpt-resume", img1, "--ckpt-dir", ".", "--ckpt-stop-at", third], work,
                    ok=(75,))
        img2 = sorted(f for f in os.listdir(work) if f.endswith(".ckpt"))[-1]
        rows.append(("Windows x64", "Wine", "%s -> %d" % (third, 2 * int(third)), dt, img2))
        say("%s3.%s The Windows build (heat.exe, MinGW-w64) resumes under Wine, runs the next %s steps," % (
            BOLD, END, third))
        say("   checkpoints and stops (%.2f s under Wine; Wine and its services had started beforehand in %.2f s)"
            " -> %s\n" % (dt, wine_start, img2))

        dt, p = run(["qemu-s390x", heat_s390, "--ckpt-resume", img2, "--ckpt-dir", "."], work)
        got = result(p)
        rows.append(("Linux s390x", "qemu-user", "%d -> %s" % (2 * int(third), STEPS), dt, ""))
        say("%s4.%s The big-endian s390x build resumes under qemu-s390x and finishes (%.2f s):" % (BOLD, END, dt))
        say("   %s\n" % got)

        say("%-14s %-10s %-13s %8s  %s" % ("platform", "runs as", "steps", "time s", "image written"))
        for plat, how, steps, dt, img in rows:
            size = ("%s (%.1f MiB)" % (img, os.path.getsize(os.path.join(work, img)) / 2**20)) if img else "-"
            say("%-14s %-10s %-13s %8.2f  %s" % (plat, how, steps, dt, size))
        say("")
        if got == ref:
            say("%sIDENTICAL%s: the migrated computation's result equals the uninterrupted run bit for bit." % (
                GREEN + BOLD, END))
        else:
            say("%sDIFFERENT%s:\n  %s\n  %s" % (RED + BOLD, END, got, ref))
            sys.exit(1)
        migration_demo()
        say("\n%sNext: docs/api.md (make your program checkpointable), docs/cli.md (the ckpt tool).%s" % (DIM, END))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
