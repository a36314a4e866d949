"""`ckpt job` and `ckpt evacuate` against a real Slurm (ctest label `slurm`).

Each case starts its own cluster (munged, slurmctld, slurmd n1 and n2, all
under a private directory with their own ports; tests/lib/slurm.py), submits
real batch jobs whose one line is `exec ckpt job ...`, moves them with
Slurm's own mechanisms (partition preemption, `scancel --signal`, a drain)
and checks the data: the final result line equals the uninterrupted run's,
bit for bit, and the job record shows where each part ran. Timings are
never asserted.

  test_slurm.py CASE --bin BUILD/bin

Exit 77 (ctest SKIP) when slurm-wlm or munge is missing.
"""
import argparse
import json
import re
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import slurm  # noqa: E402
from ckpttest import check, wait_for  # noqa: E402

A = None
WORK = None
# Each host's own /run: registrations are per PID namespace, as on separate machines.
RUNTIME = "/run/ckpt-test"


def prog(name):
    return os.path.join(A.bin, name)


def reference(argv):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    check(p.returncode == 0, "reference run: rc %d %s" % (p.returncode, p.stderr))
    return [l for l in p.stdout.splitlines() if l.startswith("result")][-1]


def job_script(out, body, *sbatch):
    lines = ["#!/bin/sh", "#SBATCH --requeue", "#SBATCH --open-mode=append", "#SBATCH -o " + out]
    lines += ["#SBATCH " + s for s in sbatch]
    return "\n".join(lines + [body, ""])


def record(d):
    return json.load(open(os.path.join(d, "job.json")))


def events(d):
    return [(e["event"], e["node"]) for e in record(d)["events"]]


def output(path):
    return open(path).read() if os.path.exists(path) else ""


def final_result_text(text):
    res = [l for l in text.splitlines() if l.startswith("result")]
    check(len(res) == 1, "want one result line in the job's output, got %d:\n%s" % (len(res), text))
    return res[0]


def final_result(out):
    return final_result_text(output(out))


HEAT = ["256", "200000"]  # ~10 s here


def heat_job(c, extra="", every=1):
    """A heat job on n1 (n2 drained while it starts); returns (job id, image dir, output, argv)."""
    argv = [prog("heat")] + HEAT
    d, out = os.path.join(WORK, "heat-images"), os.path.join(WORK, "heat.out")
    c.run(["scontrol", "update", "nodename=n2", "state=drain", "reason=ckpt-test"])
    body = "exec %s job --dir %s --every %d %s -- %s" % (prog("ckpt"), d, every, extra, " ".join(argv))
    jid = c.sbatch(job_script(out, body, "--signal=B:USR1@5", "-J heat"), env=c.env(CKPT_RUNTIME_DIR=RUNTIME))
    c.wait_state(jid, ["RUNNING"], node="n1")
    c.run(["scontrol", "update", "nodename=n2", "state=resume"])
    wait_for(lambda: [f for f in os.listdir(d) if f.endswith(".ckpt")] if os.path.isdir(d) else [],
             "the first periodic image", timeout=120)
    return jid, d, out, argv


def damage(path):
    b = bytearray(open(path, "rb").read())
    b[len(b) // 2] ^= 0xFF
    open(path, "wb").write(b)


def case_outside_slurm():
    """`ckpt job` without a scheduler (HTCondor's convention): USR1 checkpoints and exits with
    --exit-code 85, no requeue; the rerun skips a damaged newest image, naming it, and resumes from the
    one before (same result); with every image damaged it refuses instead of starting over."""
    argv = [prog("heat"), "256", "60000"]
    ref = reference(argv)
    d = os.path.join(WORK, "images")
    job = [prog("ckpt"), "job", "--dir", d, "--exit-code", "85"]
    env = dict(os.environ, CKPT_RUNTIME_DIR=RUNTIME)
    env.pop("SLURM_JOB_ID", None)
    p = subprocess.Popen(job + ["--every", "0.5", "--"] + argv, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    wait_for(lambda: len([f for f in os.listdir(d) if f.endswith(".ckpt")]) >= 2 if os.path.isdir(d) else False,
             "two periodic images", timeout=120)
    p.send_signal(signal.SIGUSR1)
    out, err = p.communicate(timeout=120)
    check(p.returncode == 85 and "resume it with the same command" in err and "requeue" not in err,
          "first run: rc %d %s" % (p.returncode, err))
    images = sorted(f for f in os.listdir(d) if f.endswith(".ckpt"))
    damage(os.path.join(d, images[-1]))
    q = subprocess.run(job + ["--"] + argv, env=env, capture_output=True, text=True, timeout=300)
    check(q.returncode == 0 and "skipping " + os.path.join(d, images[-1]) in q.stderr and
          "resuming heat from " + os.path.join(d, images[-2]) in q.stderr, "rerun: rc %d %s" % (q.returncode, q.stderr))
    check(final_result_text(q.stdout) == ref, "result %s, uninterrupted %s" % (q.stdout, ref))
    for f in images[:-1]:
        damage(os.path.join(d, f))
    q = subprocess.run(job + ["--"] + argv, env=env, capture_output=True, text=True, timeout=300)
    check(q.returncode == 3 and "result" not in q.stdout and "reads back whole: not starting over" in q.stderr,
          "every image damaged: rc %d %s %s" % (q.returncode, q.stdout, q.stderr))


def case_preempt_program():
    """heat under `ckpt job`, preempted on n1 by a high-priority job: it checkpoints on the
    preemption's USR1, requeues, resumes on n2 from that image; result equal to the uninterrupted run."""
    ref = reference([prog("heat")] + HEAT)
    with slurm.Cluster(os.path.join(WORK, "cluster")) as c:
        jid, d, out, argv = heat_job(c)
        high = c.sbatch("#!/bin/sh\nsleep 60\n", "-p", "high", "-w", "n1", "--exclusive", "-o", "/dev/null")
        c.wait_state(high, ["RUNNING"])
        j = c.wait_state(jid, ["COMPLETED", "FAILED"], timeout=180)
        check(j["JobState"] == "COMPLETED", "heat job: %s\n%s" % (j, output(out)))
        check(final_result(out) == ref, "result %s, uninterrupted %s" % (final_result(out), ref))
        ev = events(d)
        check(("checkpoint", "n1") in ev and ("resume", "n2") in ev and ("finished", "n2") in ev,
              "job record: %s" % ev)
        rec = record(d)["events"]
        ck = [e for e in rec if e["event"] == "checkpoint"][-1]
        rs = [e for e in rec if e["event"] == "resume"][-1]
        check(rs["image"] == ck["image"] and "SIGUSR1" in ck["why"],
              "resumed from %s, the preemption's checkpoint was %s" % (rs["image"], ck))
        check(int(j.get("Restarts", "0")) >= 1, "Slurm did not requeue it: %s" % j)
        c.run(["scancel", high], check=False)


def case_checkpoint_fails():
    """The checkpoint on the warning signal fails (its directory is full): the job says so, names the
    earlier image, stops the program and requeues; the next run resumes from that earlier image and the
    result equals the uninterrupted run's."""
    ref = reference([prog("heat")] + HEAT)
    d = os.path.join(WORK, "heat-images")
    os.makedirs(d)
    # Mounted before the hosts are made: their mount namespaces start as copies of this one.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "ckpt-test", d], check=True)
    try:
        with slurm.Cluster(os.path.join(WORK, "cluster")) as c:
            jid, d, out, argv = heat_job(c, every=1)
            before = sorted(f for f in os.listdir(d) if f.endswith(".ckpt"))
            subprocess.run(["dd", "if=/dev/zero", "of=" + os.path.join(d, "filler"), "bs=64k"],
                           capture_output=True)  # fills the directory: ENOSPC
            c.run(["scancel", "--signal=USR1", "--batch", jid])
            wait_for(lambda: "checkpoint failed" in output(out), "the failure in the job's output", timeout=120)
            os.unlink(os.path.join(d, "filler"))
            j = c.wait_state(jid, ["COMPLETED", "FAILED"], timeout=180)
            text = output(out)
            check(j["JobState"] == "COMPLETED", "heat job: %s\n%s" % (j, text))
            check("requeued job " + jid in text, "job output:\n" + text)
            check(final_result(out) == ref, "result %s, uninterrupted %s" % (final_result(out), ref))
            # The record shares the full directory: the output is what tells.
            m = re.search(r"checkpoint failed: .*No space left on device.*\n.*resumes from the earlier image (\S+) "
                          r".*the work since then is lost \(\d+\.\d+ s\)", text)
            check(m, "the failure and the earlier image in the job's output:\n" + text)
            earlier = m.group(1)
            check(os.path.basename(earlier) in before,
                  "earlier image %s; images before the failure %s" % (earlier, before))
            check("resuming heat from " + earlier + ";" in text,
                  "the next run did not resume from %s:\n%s" % (earlier, text))
            rs = [e for e in record(d)["events"] if e["event"] == "resume"]
            check(rs and rs[0]["image"] == earlier, "job record: resumes %s" % rs)
    finally:
        for _ in range(3):  # a tmpfs mounted twice (a retried run) needs two
            if os.path.ismount(d):
                subprocess.run(["umount", "-l", d])


def case_node_dies():
    """The node dies without warning (its slurmd and the job's processes killed): Slurm marks it DOWN
    and requeues the job, which resumes on n2 from its last periodic image: at most one interval of
    work is lost and the result equals the uninterrupted run's."""
    ref = reference([prog("heat")] + HEAT)
    with slurm.Cluster(os.path.join(WORK, "cluster"), slurmd_timeout=5) as c:
        jid, d, out, argv = heat_job(c, every=1)
        wait_for(lambda: len([f for f in os.listdir(d) if f.endswith(".ckpt")]) >= 2, "two periodic images",
                 timeout=120)
        killed = c.kill_node("n1", jid)
        check(len(killed) >= 2, "found only %s of the job's processes" % killed)
        before = sorted(f for f in os.listdir(d) if f.endswith(".ckpt"))
        j = c.wait_state(jid, ["COMPLETED", "FAILED"], timeout=240)
        text = output(out)
        check(j["JobState"] == "COMPLETED" and j["NodeList"] == "n2", "heat job: %s\n%s" % (j, text))
        check(final_result(out) == ref, "result %s, uninterrupted %s" % (final_result(out), ref))
        rs = [e for e in record(d)["events"] if e["event"] == "resume"]
        check(rs and rs[0]["node"] == "n2" and os.path.basename(rs[0]["image"]) == before[-1],
              "resumed from %s; the newest image when n1 died was %s" % (rs, before[-1]))


def case_rebalance():
    """Load balancing: heat shares a busy n1 with another job while n2 is idle; `ckpt rebalance JOB
    --to n2` moves it (checkpoint, held requeue, placed on n2, released) with no work lost, and the
    other job runs on untouched. A job that is not a ckpt job is refused, left running."""
    ref = reference([prog("heat")] + HEAT)
    with slurm.Cluster(os.path.join(WORK, "cluster")) as c:
        env = c.env(CKPT_RUNTIME_DIR=RUNTIME)
        busy = c.sbatch("#!/bin/sh\nexec sleep 600\n", "-o", "/dev/null", "-c", "1", "-w", "n1", env=env)
        c.wait_state(busy, ["RUNNING"], node="n1")
        jid, d, out, argv = heat_job(c, every=5)
        p = c.run([prog("ckpt"), "rebalance", busy, "--to", "n2"], check=False, env=env)
        check(p.returncode == 1 and "not a ckpt job" in p.stderr, "plain job: rc %d %s" % (p.returncode, p.stderr))
        p = c.run([prog("ckpt"), "rebalance", jid, "--to", "n2", "--json", "--timeout", "120"], check=False,
                  timeout=200, env=env)
        check(p.returncode == 0, "ckpt rebalance: rc %d %s %s\n%s" % (p.returncode, p.stdout, p.stderr, output(out)))
        rep = json.loads(p.stdout)
        check(rep["from"] == "n1" and rep["resumed_on"] == "n2" and rep["checkpointed"] and
              rep["lost_work"] == "none", "rebalance: %s" % rep)
        j = c.wait_state(jid, ["COMPLETED", "FAILED"], timeout=180)
        check(j["JobState"] == "COMPLETED" and j["NodeList"] == "n2", "heat job: %s\n%s" % (j, output(out)))
        check(final_result(out) == ref, "result %s, uninterrupted %s" % (final_result(out), ref))
        rec = record(d)["events"]
        ck = [e for e in rec if e["event"] == "checkpoint"][-1]
        rs = [e for e in rec if e["event"] == "resume"][-1]
        check(rs["image"] == ck["image"] and rs["node"] == "n2", "resumed from %s, checkpoint %s" % (rs, ck))
        check(not os.path.exists(os.path.join(d, "requeue-hold")), "the hold request was left behind")
        b = c.job(busy)
        check(b.get("JobState") == "RUNNING" and b.get("Restarts") == "0", "the busy job was disturbed: %s" % b)


JACOBI = ["96", "10000", "1000"]  # ~12 s here: 3 members, 1 ms per sweep


def case_evacuate_group():
    """A dependent group (jacobi, 3 members) under `ckpt job -n 3` and a plain job run on n1;
    `ckpt evacuate n1` moves the group to n2 (checkpoint, requeue, resume; bit-identical result) and
    leaves the plain job running, unsignalled."""
    ref = reference([prog("ckpt"), "run", "-n", "3", "-q", "--", prog("jacobi")] + JACOBI)
    with slurm.Cluster(os.path.join(WORK, "cluster")) as c:
        d, out = os.path.join(WORK, "jacobi-images"), os.path.join(WORK, "jacobi.out")
        c.run(["scontrol", "update", "nodename=n2", "state=drain", "reason=ckpt-test"])
        body = "exec %s job -n 3 --dir %s --every 2 -- %s %s" % (prog("ckpt"), d, prog("jacobi"), " ".join(JACOBI))
        env = c.env(CKPT_RUNTIME_DIR=RUNTIME)
        jid = c.sbatch(job_script(out, body, "-n 1", "-c 1", "-J jacobi"), env=env)
        plain_out = os.path.join(WORK, "plain.out")
        plain = c.sbatch("#!/bin/sh\necho started\nsleep 600\n", "-o", plain_out, "-c", "1", env=env)
        c.wait_state(jid, ["RUNNING"], node="n1")
        c.wait_state(plain, ["RUNNING"], node="n1")
        c.run(["scontrol", "update", "nodename=n2", "state=resume"])
        wait_for(lambda: [f for f in os.listdir(d) if f.endswith(".ckpt")] if os.path.isdir(d) else [],
                 "the group's first periodic image", timeout=120)
        p = c.run([prog("ckpt"), "evacuate", "n1", "--json", "--timeout", "120"], check=False, timeout=200, env=env)
        check(p.returncode == 0, "ckpt evacuate: rc %d %s %s\n%s" % (p.returncode, p.stdout, p.stderr, output(out)))
        rep = json.loads(p.stdout)
        jobs = {j["job"]: j for j in rep["jobs"]}
        check(set(jobs) == {jid, plain}, "evacuate reported %s" % rep)
        g = jobs[jid]
        check(g["managed"] and g["checkpointed"] and g["requeued"] and g["resumed_on"] == "n2" and
              g["lost_work"] == "none", "group job: %s" % g)
        check(not jobs[plain]["managed"], "plain job: %s" % jobs[plain])
        j = c.wait_state(jid, ["COMPLETED", "FAILED"], timeout=180)
        check(j["JobState"] == "COMPLETED" and j["NodeList"] == "n2", "jacobi job: %s\n%s" % (j, output(out)))
        check(final_result(out) == ref, "result %s, uninterrupted %s" % (final_result(out), ref))
        pj = c.job(plain)
        check(pj.get("JobState") == "RUNNING" and pj.get("NodeList") == "n1" and pj.get("Restarts") == "0",
              "the plain job was disturbed: %s" % pj)
        sinfo = c.run(["sinfo", "-h", "-n", "n1", "-o", "%T"]).stdout.strip()
        check(sinfo in ("draining", "drained"), "n1 is %s" % sinfo)
        c.run(["scancel", plain], check=False)


COUNTER = """import time
i = 0
while i < 300:
    print(i, flush=True)
    i += 1
    time.sleep(0.04)
print("done", flush=True)
"""


def case_drain_transparent():
    """An unmodified python3 counter under `ckpt job --transparent`: n1 is drained and the job told to
    move with Slurm's own commands (scontrol update state=drain; scancel --signal=USR1 --batch); it is
    dumped, requeued and restored on n2, and its count goes on with no gap or repeat."""
    with slurm.Cluster(os.path.join(WORK, "cluster")) as c:
        script = os.path.join(WORK, "counter.py")
        open(script, "w").write(COUNTER)
        d, out = os.path.join(WORK, "counter-images"), os.path.join(WORK, "counter.out")
        c.run(["scontrol", "update", "nodename=n2", "state=drain", "reason=ckpt-test"])
        body = "exec %s job --transparent --dir %s --every 2 -- %s %s" % (prog("ckpt"), d, sys.executable, script)
        jid = c.sbatch(job_script(out, body, "-J counter"), env=c.env(CKPT_RUNTIME_DIR=RUNTIME))
        c.wait_state(jid, ["RUNNING"], node="n1")
        c.run(["scontrol", "update", "nodename=n2", "state=resume"])
        wait_for(lambda: os.path.exists(os.path.join(d, "tree", "process.ckpt")), "the first periodic dump",
                 timeout=120)
        c.run(["scontrol", "update", "nodename=n1", "state=drain", "reason=ckpt-test"])
        c.run(["scancel", "--signal=USR1", "--batch", jid])
        j = c.wait_state(jid, ["COMPLETED", "FAILED"], timeout=180)
        text = output(out)
        check(j["JobState"] == "COMPLETED" and j["NodeList"] == "n2", "counter job: %s\n%s" % (j, text))
        nums = [l for l in text.splitlines() if l.strip().isdigit()]
        check(nums == [str(i) for i in range(300)] and text.rstrip().endswith("done"),
              "count with a gap or repeat (%d numbers):\n%s" % (len(nums), text))
        ev = events(d)
        check(("checkpoint", "n1") in ev and ("resume", "n2") in ev and ("finished", "n2") in ev,
              "job record: %s" % ev)


def main():
    global A, WORK
    ap = argparse.ArgumentParser()
    ap.add_argument("case")
    ap.add_argument("--bin", required=True)
    A = ap.parse_args()
    why = slurm.missing() if A.case != "outside_slurm" else ""
    if why:
        print("SKIP: " + why)
        return slurm.SKIP
    WORK = tempfile.mkdtemp(prefix="ckpt-slurm-%s-" % A.case)
    os.chmod(WORK, 0o755)  # munged: every directory above its socket must be o+x
    try:
        globals()["case_" + A.case]()
    except (RuntimeError, slurm.SlurmUnavailable) as e:
        print("FAIL %s: %s\n(work dir kept: %s)" % (A.case, e, WORK))
        return 1
    except SystemExit:  # a failed check
        print("(work dir kept: %s)" % WORK)
        raise
    if os.environ.get("CKPT_TEST_SHOW"):
        print(output(os.path.join(WORK, "heat.out")))
    shutil.rmtree(WORK, ignore_errors=True)
    print("PASS " + A.case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
