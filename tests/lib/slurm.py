"""A real Slurm cluster on this machine, for the `slurm` tests.

Cluster(root, nodes=2) starts munged, slurmctld and one slurmd per node
(n1, n2, ...) under `root` with their own config, munge key and state, and
stops them by PID (never by name: other work may run here). slurmctld runs
in a host "ctl" and each slurmd in a host of its own (tests/lib/hosts.py:
network, PID, mount, IPC and UTS namespaces on one bridge), so a job that
moves lands on another address, hostname and PID space. munged runs in ctl;
its socket is a path every host reaches. Slurm's commands must run in "ctl"
(the others cannot reach slurmctld): Cluster.run() does that. The hosts share
this machine's file system (a shared file system, as on a cluster) but each
has its own /run, /dev/shm and /proc.

Settings that make a small test cluster quick (../shared/slurm-notes.md):
cred_expire=5 (a requeued job waits that long instead of 120 s),
1 s scheduling intervals, preempt_send_user_signal so a preempted job gets
its --signal first, partition `low` (default, preemptable with REQUEUE,
GraceTime 10 s) and `high`.
"""
import os
import random
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hosts as hostslib  # noqa: E402

SKIP = 77


class SlurmUnavailable(Exception):
    pass


def missing():
    """Why a cluster cannot start here, or ''."""
    for tool in ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "scontrol", "squeue", "sinfo"):
        if shutil.which(tool) is None:
            return "%s is not installed (apt-get install slurm-wlm munge)" % tool
    if os.geteuid() != 0:
        return "the test cluster runs its daemons as root"
    return hostslib.unavailable()


CONF = """ClusterName=ckpttest
SlurmctldHost=ctl({ctl_addr})
SlurmctldPort=6817
SlurmdPort=6818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/munge.sock,cred_expire=5
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool/%n
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd-%n.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_interval=1
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
SlurmctldParameters=preempt_send_user_signal
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
JobRequeue=1
KillWait=5
MinJobAge=600
InactiveLimit=0
SlurmdTimeout={slurmd_timeout}
{nodes}PartitionName=low Nodes=ALL Default=YES MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE GraceTime=10
PartitionName=high Nodes=ALL MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF
"""


class Cluster:
    def __init__(self, root, nodes=2, slurmd_timeout=300):
        why = missing()
        if why:
            raise SlurmUnavailable(why)
        self.root = root
        self.names = ["n%d" % i for i in range(1, nodes + 1)]
        self.slurmd_timeout = slurmd_timeout  # a node that stops answering is DOWN after this
        self.procs = []
        self.munged_pid = None
        self.hosts = None

    def env(self, **extra):
        e = dict(os.environ, SLURM_CONF=os.path.join(self.root, "etc", "slurm.conf"))
        e.update(extra)
        return e

    def run(self, argv, check=True, timeout=60, **kw):
        """Runs argv in the "ctl" host, where slurmctld is."""
        p = self.hosts["ctl"].run(argv, env=kw.pop("env", None) or self.env(), capture_output=True, text=True,
                                  timeout=timeout, **kw)
        if check and p.returncode != 0:
            raise RuntimeError("%s: rc %d %s%s" % (" ".join(argv), p.returncode, p.stdout, p.stderr))
        return p

    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, *exc):
        self._stop()

    def _start(self):
        r = self.root
        for d in ("etc", "munge", "log", "run", "state", "spool"):
            os.makedirs(os.path.join(r, d), exist_ok=True)
        os.chmod(os.path.join(r, "munge"), 0o755)  # munged: the socket's directory must be o+x
        key = os.path.join(r, "munge", "munge.key")
        subprocess.run(["mungekey", "--create", "--keyfile=" + key], check=True, capture_output=True)
        self.hosts = hostslib.Hosts(["ctl"] + self.names)
        self.hosts.__enter__()
        # munged in ctl too: if this test is killed, every daemon ends with the hosts' namespaces.
        m = os.path.join(r, "munge")
        ctl = self.hosts["ctl"]
        p = ctl.run(["munged", "--socket=%s/munge.sock" % m, "--key-file=" + key, "--pid-file=%s/munged.pid" % m,
                     "--log-file=%s/munged.log" % m, "--seed-file=%s/munged.seed" % m], capture_output=True,
                    text=True, timeout=30)
        if p.returncode != 0:
            raise SlurmUnavailable("munged did not start: " + p.stderr.strip())
        self.munged_pid = int(open(os.path.join(m, "munged.pid")).read())  # in ctl's PID namespace
        nodes = "".join("NodeName=%s NodeHostname=%s NodeAddr=%s CPUs=2 RealMemory=1000 State=UNKNOWN\n" %
                        (n, n, self.hosts[n].addr) for n in self.names)
        with open(os.path.join(r, "etc", "slurm.conf"), "w") as f:
            f.write(CONF.format(root=r, ctl_addr=self.hosts["ctl"].addr, nodes=nodes,
                                slurmd_timeout=self.slurmd_timeout))
        log = open(os.path.join(r, "log", "daemons.out"), "a")
        self.procs.append(self.hosts["ctl"].popen(["slurmctld", "-D", "-c"], env=self.env(), stdout=log,
                                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        self.slurmd = {}
        for n in self.names:
            self.slurmd[n] = len(self.procs)
            self.procs.append(self.hosts[n].popen(["slurmd", "-D", "-N", n], env=self.env(), stdout=log,
                                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        want = "%d idle" % len(self.names)
        deadline = time.time() + 60
        while time.time() < deadline:
            p = self.run(["sinfo", "-h", "-p", "low", "-o", "%D %T"], check=False)
            if p.stdout.strip() == want:
                return
            time.sleep(0.2)
        raise SlurmUnavailable("the test cluster did not come up: sinfo says %r (logs in %s)" %
                               (p.stdout.strip(), os.path.join(r, "log")))

    def _stop(self):
        if self.procs and self.hosts is not None:
            self.run(["scancel", "--full", "-u", "root"], check=False)
            deadline = time.time() + 20
            while time.time() < deadline:
                p = self.run(["squeue", "-h", "-t", "R,CG,S"], check=False)
                if p.returncode != 0 or not p.stdout.strip():
                    break
                time.sleep(0.2)
            self.run(["scontrol", "shutdown"], check=False)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []
        if self.hosts is not None:
            if self.munged_pid:
                self.hosts["ctl"].run(["kill", str(self.munged_pid)], timeout=30)
                self.munged_pid = None
            self.hosts.close()  # ends whatever is left in the hosts
            self.hosts = None

    def kill_node(self, name, job_id):
        """The node dies without warning: its slurmd and the job's processes there get SIGKILL."""
        p = self.procs[self.slurmd[name]]
        p.kill()
        p.wait()
        victims = set()
        ns = os.readlink("/proc/%d/ns/pid" % self.hosts[name].init_pid)
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                if os.readlink("/proc/%s/ns/pid" % pid) != ns:
                    continue  # not on that node (other clusters may run jobs with the same id)
                env = open("/proc/%s/environ" % pid, "rb").read().split(b"\0")
            except OSError:
                continue
            if b"SLURM_JOB_ID=" + job_id.encode() in env:
                victims.add(int(pid))
                ppid = int(open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()[1])
                if "slurmstepd" in open("/proc/%d/comm" % ppid).read():
                    victims.add(ppid)  # the job's step daemon: it would report the job's end
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return victims

    # Jobs -----------------------------------------------------------------

    def sbatch(self, script, *options, env=None):
        """Submits `script` (text); returns the job id."""
        path = os.path.join(self.root, "job-%d.sh" % random.randrange(1 << 30))
        with open(path, "w") as f:
            f.write(script)
        p = self.run(["sbatch", "--parsable"] + list(options) + [path], env=env or self.env())
        return p.stdout.strip().split(";")[0]

    def job(self, job_id):
        """`scontrol show job` as a dict (empty once the job is gone)."""
        p = self.run(["scontrol", "-o", "show", "job", job_id], check=False)
        out = {}
        for word in p.stdout.split():
            if "=" in word:
                k, v = word.split("=", 1)
                out[k] = v
        return out

    def wait_state(self, job_id, states, timeout=120, node=None):
        """Waits until the job is in one of `states` (and on `node`, if given); returns its record."""
        deadline = time.time() + timeout
        j = {}
        while time.time() < deadline:
            j = self.job(job_id)
            if j.get("JobState") in states and (node is None or j.get("NodeList") == node):
                return j
            time.sleep(0.2)
        raise RuntimeError("job %s not %s%s within %d s: %s" %
                           (job_id, "/".join(states), "" if node is None else " on " + node, timeout, j))
