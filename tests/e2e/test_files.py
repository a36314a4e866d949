"""End-to-end: the files ckpt writes and reads for programs built with libckpt,
tried as an attacker and as careless users would (issue 10, points 8, 13, 14,
18, 20): the runtime directory that holds registrations, image permissions
and temporary files, several writers in one directory, registrations and
temporary files after every exit, and what `ckpt checkpoint`, `inspect` and
`verify` report. The attacker is uid 65534 (nobody), in forked children."""
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from ckpttest import *  # noqa

CKPT = os.path.join(BIN, "ckpt")
HEAT = os.path.join(BIN, "heat")
NOBODY = 65534


def as_nobody(fn):
    """Runs fn() in a child process as uid/gid 65534; fails the test if it raises."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            fn()
            code = 0
        except BaseException as e:  # noqa
            print("attacker setup failed: %r" % e, file=sys.stderr)
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    check(os.waitstatus_to_exitcode(status) == 0, "the attacker's setup failed")


def gated(cmd, **kw):
    """Starts cmd held before its exec (so its PID is known in advance); release(p) lets it run."""
    return subprocess.Popen(["sh", "-c", 'read _; exec "$@"', "sh"] + [str(c) for c in cmd], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def spawn(cmd, **kw):
    return subprocess.Popen([str(c) for c in cmd], **kw)


def release(p):
    p.stdin.write("\n")
    p.stdin.close()
    p.stdin = None


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def need_root():
    if os.geteuid() != 0:
        print("skip: the attacker tests need root (to act as uid 65534)")
        sys.exit(SKIP)



def write(path, data, perm=0o644):
    with open(path, "w") as f:
        f.write(data)
    os.chmod(path, perm)


def read(path):
    with open(path, "rb") as f:
        return f.read().decode(errors="replace")


def plant_registration_links(rt, pid, victim):
    """The attack of issue 10 point 13: the program's registration names, as symlinks to a victim file."""
    def plant():
        for n in ["%d.json.tmp" % pid, "%d.json" % pid]:
            os.symlink(victim, os.path.join(rt, n))
    as_nobody(plant)


def test_runtime_dir_of_another_user_is_refused(work):
    """CKPT_RUNTIME_DIR names a directory another user made (0777) and filled
    with symlinks: the program refuses it, says why, runs on, and the victim
    file is untouched."""
    need_root()
    ref = result_line(run([HEAT, 48, 100], check=0).stdout)
    os.chmod(work, 0o755)
    evil = os.path.join(work, "evil")
    victim = os.path.join(work, "victim")
    write(victim, "precious\n")
    os.mkdir(evil)  # the attacker's directory: theirs, open to all
    os.chown(evil, NOBODY, NOBODY)
    os.chmod(evil, 0o777)
    p = gated([HEAT, 48, 100, "--ckpt-dir", work], env=env(CKPT_RUNTIME_DIR=evil))
    plant_registration_links(evil, p.pid, victim)
    release(p)
    out, err = p.communicate(timeout=120)
    check(p.returncode == 0 and result_line(out) == ref, "the program should run on: rc %d\n%s" % (p.returncode, err))
    check(read(victim) == "precious\n", "the victim file was overwritten: %r" % read(victim))
    check("warning" in err and evil in err and "is owned by uid 65534, not by this user" in err,
          "no message naming the refused directory: " + err)
    # The CLI refuses to read registrations from it too.
    fake = {"pid": os.getpid(), "start_time": 0, "program": "x", "generation": 0, "last_image": "", "last_error": ""}
    as_nobody(lambda: write(os.path.join(evil, "%d.json" % os.getpid()), json.dumps(fake)))
    c = run([CKPT, "checkpoint", os.getpid(), "--no-wait"], env_extra={"CKPT_RUNTIME_DIR": evil})
    check(c.returncode == 1 and "owned by uid 65534" in c.stderr, "CLI: rc %d %s" % (c.returncode, c.stderr))


def inner_default_tmp(old):
    """Runs in a private mount namespace with an empty tmpfs on /tmp (see
    test_default_runtime_dir_taken_over)."""
    global CKPT, HEAT
    # The build may itself be under /tmp (a clone there): keep reaching it.
    subprocess.run(["mount", "--bind", "/tmp", old], check=True)
    CKPT, HEAT = [old + p[4:] if p.startswith("/tmp/") else p for p in (CKPT, HEAT)]
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=1777", "tmpfs", "/tmp"], check=True)
    e = {k: v for k, v in os.environ.items() if k not in ("CKPT_RUNTIME_DIR", "XDG_RUNTIME_DIR")}
    rt = "/tmp/ckpt-%d" % os.geteuid()
    victim = "/tmp/victim"
    write(victim, "precious\n")
    work = "/tmp/w"
    os.mkdir(work)
    ref = result_line(run([HEAT, 48, 100, "--ckpt-no-listen"], check=0).stdout)
    # Another user made the directory first, world-writable, and planted links.
    as_nobody(lambda: (os.mkdir(rt), os.chmod(rt, 0o777)))
    p = gated([HEAT, 48, 100, "--ckpt-dir", work], env=e)
    plant_registration_links(rt, p.pid, victim)
    release(p)
    out, err = p.communicate(timeout=120)
    check(p.returncode == 0 and result_line(out) == ref, "rc %d: %s" % (p.returncode, err))
    check(read(victim) == "precious\n", "the victim file was overwritten: %r" % read(victim))
    check(rt in err and "owned by uid 65534" in err, "no message naming %s: %s" % (rt, err))
    # A planted group registration must not make `ckpt checkpoint NAME` connect to the attacker.
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    lst.settimeout(0.5)
    fake = {"kind": "group", "group": "jacobi", "id": "g1", "pid": os.getpid(), "port": lst.getsockname()[1]}
    as_nobody(lambda: write(os.path.join(rt, "1.json"), json.dumps(fake), 0o666))
    c = subprocess.run([CKPT, "checkpoint", "jacobi", "--timeout", "2"], env=e, capture_output=True, text=True)
    try:
        lst.accept()
        fail("`ckpt checkpoint jacobi` connected to the attacker's port: " + c.stderr)
    except socket.timeout:
        pass
    check(c.returncode == 1 and rt in c.stderr and "owned by uid 65534" in c.stderr, "CLI: " + c.stderr)
    # Without the attacker: the directory is made 0700 and registrations work.
    shutil.rmtree(rt)
    p = spawn([HEAT, 96, 150000, "--ckpt-dir", work], env=e, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        reg = os.path.join(rt, "%d.json" % p.pid)
        wait_for(lambda: os.path.exists(reg), reg)
        check(mode(rt) == 0o700 and mode(reg) == 0o600, "modes %o %o" % (mode(rt), mode(reg)))
        c = subprocess.run([CKPT, "checkpoint", str(p.pid), "--exit"], env=e, capture_output=True, text=True,
                           timeout=120)
        check(c.returncode == 0, "checkpoint: " + c.stderr)
        p.communicate(timeout=60)
        check(p.returncode == 75 and not os.listdir(rt), "rc %d, left %s" % (p.returncode, os.listdir(rt)))
    finally:
        if p.poll() is None:
            p.kill()
    print("inner ok")


def test_default_runtime_dir_taken_over(work):
    """/tmp/ckpt-UID made first by another user (issue 10, point 13), in a
    private mount namespace so the real /tmp is not touched."""
    need_root()
    if not shutil.which("unshare"):
        print("skip: no unshare")
        return
    old = tempfile.mkdtemp(dir="/run", prefix="ckpt-test-oldtmp-")  # where the real /tmp stays reachable
    try:
        p = run(["unshare", "--mount", "--propagation", "private", sys.executable, os.path.abspath(__file__),
                 "--inner-default-tmp", old], timeout=300)
    finally:
        os.rmdir(old)  # the bind mount on it ended with the namespace
    check(p.returncode == 0 and "inner ok" in p.stdout, "in the namespace:\n%s\n%s" % (p.stdout, p.stderr))


def test_xdg_runtime_dir(work):
    """With $XDG_RUNTIME_DIR, registrations go to $XDG_RUNTIME_DIR/ckpt (0700)."""
    xdg = os.path.join(work, "xdg")
    os.mkdir(xdg, 0o700)
    e = env(XDG_RUNTIME_DIR=xdg)
    e.pop("CKPT_RUNTIME_DIR", None)
    p = spawn([HEAT, 96, 150000, "--ckpt-dir", work], env=e, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        reg = os.path.join(xdg, "ckpt", "%d.json" % p.pid)
        wait_for(lambda: os.path.exists(reg), reg)
        check(mode(os.path.join(xdg, "ckpt")) == 0o700, "mode %o" % mode(os.path.join(xdg, "ckpt")))
        c = subprocess.run([CKPT, "checkpoint", str(p.pid), "--exit", "--json"], env=e, capture_output=True,
                           text=True, timeout=120)
        check(c.returncode == 0, "checkpoint: " + c.stderr)
        check(os.path.exists(json.loads(c.stdout)["image"]), c.stdout)
        p.communicate(timeout=60)
        check(p.returncode == 75 and not os.path.exists(reg), "rc %d" % p.returncode)
    finally:
        if p.poll() is None:
            p.kill()


def test_images_private_and_temp_names_unpredictable(work):
    """Images are 0600 unless widened; the temporary file is never a
    predictable name an attacker can plant (issue 10, point 14)."""
    need_root()
    os.chmod(work, 0o755)
    shared = os.path.join(work, "shared")
    os.mkdir(shared)
    os.chmod(shared, 0o777)  # a project directory everyone may write (no sticky bit)
    victim = os.path.join(work, "victim")
    write(victim, "precious\n")

    def plant():
        os.symlink(victim, os.path.join(shared, "heat.000001.ckpt.tmp"))
        write(os.path.join(shared, "heat.000002.ckpt.tmp"), "", 0o666)  # to receive the state
    as_nobody(plant)
    rt = os.path.join(work, "rt")
    ref = result_line(run([HEAT, 48, 100], check=0).stdout)
    run([HEAT, 48, 100, "--ckpt-dir", shared, "--ckpt-stop-at", 30], check=75, env_extra={"CKPT_RUNTIME_DIR": rt})
    run([HEAT, "--ckpt-resume", shared, "--ckpt-dir", shared, "--ckpt-stop-at", 30], check=75,
        env_extra={"CKPT_RUNTIME_DIR": rt})
    check(read(victim) == "precious\n", "the victim file was written through the planted link")
    check(os.path.getsize(os.path.join(shared, "heat.000002.ckpt.tmp")) == 0, "the attacker's file got the state")
    for img in ["heat.000001.ckpt", "heat.000002.ckpt"]:
        check(mode(os.path.join(shared, img)) == 0o600, "%s mode %o" % (img, mode(os.path.join(shared, img))))
    p = run([CKPT, "resume", shared, "--dir", os.path.join(work, "r")], check=0,
            env_extra={"CKPT_RUNTIME_DIR": rt})
    check(result_line(p.stdout) == ref, "resumed result differs")
    # Widened on request: option, environment, `ckpt convert`, groups.
    d = os.path.join(work, "modes")
    run([HEAT, 48, 100, "--ckpt-dir", d, "--ckpt-stop-at", 10, "--ckpt-image-mode", "0640"], check=75)
    check(mode(newest_image(d)) == 0o640, "--ckpt-image-mode: %o" % mode(newest_image(d)))
    run([HEAT, 48, 100, "--ckpt-dir", d, "--ckpt-stop-at", 10], check=75, env_extra={"CKPT_IMAGE_MODE": "644"})
    check(mode(newest_image(d)) == 0o644, "CKPT_IMAGE_MODE: %o" % mode(newest_image(d)))
    p = run([HEAT, 48, 100, "--ckpt-image-mode", "0777x"])
    check(p.returncode == 2 and "0777x" in p.stderr, "bad mode: %d %s" % (p.returncode, p.stderr))
    conv = os.path.join(d, "conv.000001.ckpt")
    run([CKPT, "convert", newest_image(d), "--codec", "none", "-o", conv], check=0)
    check(mode(conv) == 0o600, "convert: %o" % mode(conv))
    run([CKPT, "convert", conv, "--codec", "none", "--image-mode", "0660"], check=0)
    check(mode(conv) == 0o660, "convert --image-mode: %o" % mode(conv))
    g = os.path.join(work, "g")
    for extra, want in [([], 0o600), (["--image-mode", "0640"], 0o640)]:
        shutil.rmtree(g, ignore_errors=True)
        run([CKPT, "run", "-n", 2, "--dir", g, "--every", "0.1", "--stop-after", 1, "-q"] + extra +
            ["--", os.path.join(BIN, "jacobi"), 32, 400, 2000], check=75, env_extra={"CKPT_RUNTIME_DIR": rt},
            timeout=120)
        check(mode(newest_image(g)) == want, "group image %s: %o" % (extra, mode(newest_image(g))))
    check(not [f for f in os.listdir(shared) if f.endswith(".tmp") and f.count(".") > 3], "temp files left")


def test_concurrent_writers(work):
    """Several programs of one name, and one image resumed several times at
    once, writing into one directory (issue 10, point 18): every committed
    image verifies, and each writer's "written to X" names an image that it
    wrote."""
    rt = os.path.join(work, "rt")
    d = os.path.join(work, "d")
    run([HEAT, 256, 100, "--ckpt-dir", d, "--ckpt-stop-at", 1, "--ckpt-keep", 1000], check=75)
    base = newest_image(d)
    collisions = [0]
    for rnd in range(3):
        procs = []
        for i in range(6):
            args = [HEAT, 256, 100] if i % 3 == 0 else [HEAT, "--ckpt-resume", base]
            procs.append(gated(args + ["--ckpt-dir", d, "--ckpt-stop-at", 2, "--ckpt-keep", 1000],
                               env=env(CKPT_RUNTIME_DIR=rt)))
        for p in procs:
            release(p)
        claimed = {}
        for p in procs:
            out, err = p.communicate(timeout=300)
            collisions[0] += err.count("at the same time; this checkpoint takes the next number")
            written = [l for l in err.splitlines() if " written to " in l]
            if p.returncode == 75:
                check(len(written) == 1, "one 'written' line expected: " + err)
                path = written[0].split(" written to ")[1].rsplit(" in ", 1)[0]
                check(path not in claimed, "two writers claim %s" % path)
                claimed[path] = p.pid
            else:
                check(p.returncode == 0 and not written and "checkpoint failed" in err,
                      "a writer that lost must say so: rc %d %s" % (p.returncode, err))
        imgs = [os.path.join(d, f) for f in images(d)]
        v = run([CKPT, "verify", "-q"] + imgs)
        check(v.returncode == 0, "round %d: committed images fail verify:\n%s" % (rnd, v.stdout))
        for path, pid in claimed.items():
            j = json.loads(run([CKPT, "inspect", "--json", "--no-verify", path], check=0).stdout)
            check(j["meta"]["producer.pid"] == str(pid), "%s was reported written by %d but holds %s's state" %
                  (path, pid, j["meta"]["producer.pid"]))
            check(j["progress"]["checkpoint"] == int(path[-11:-5]), "number inside %s" % path)
        check(not [f for f in os.listdir(d) if f.endswith(".tmp")], "temporary files left: %s" % os.listdir(d))
    print("     %d writers found their number taken and took the next" % collisions[0])


def test_registrations_removed_on_every_exit(work):
    """Registration files go with the program however it ends (issue 10,
    points 8 and 20); one left by a killed program is collected by the next."""
    rt = os.path.join(work, "rt")
    e = {"CKPT_RUNTIME_DIR": rt}
    run([HEAT, 48, 100, "--ckpt-dir", work, "--ckpt-stop-at", 20], check=75, env_extra=e)
    check(os.listdir(rt) == [], "after --ckpt-stop-at: %s" % os.listdir(rt))
    run([HEAT, "--ckpt-resume", work, "--ckpt-dir", work], check=0, env_extra=e)
    check(os.listdir(rt) == [], "after a normal exit: %s" % os.listdir(rt))
    # A failed resume (exit 3) after the registration was published.
    run([os.path.join(BIN, "nbody"), 8, 50, "--ckpt-dir", os.path.join(work, "nb"), "--ckpt-stop-at", 5], check=75,
        env_extra=e)
    p = run([HEAT, "--ckpt-resume", newest_image(os.path.join(work, "nb"))], env_extra=e)
    check(p.returncode == 3, "wrong image: %d %s" % (p.returncode, p.stderr))
    check(os.listdir(rt) == [], "after exit 3: %s" % os.listdir(rt))
    # A killed program cannot clean up; the next program does.
    p = spawn([HEAT, 96, 150000], env=env(**e), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: os.path.exists(os.path.join(rt, "%d.json" % p.pid)), "registration")
    p.kill()
    p.wait()
    run([HEAT, 48, 10], check=0, env_extra=e)
    check(os.listdir(rt) == [], "a dead program's registration was not collected: %s" % os.listdir(rt))
    check(not [f for f in os.listdir(work) if f.endswith(".tmp")], "temporary files: %s" % os.listdir(work))


def test_repeated_checkpoint_failure_is_reported(work):
    """The same failure twice is reported twice, not as 'no safepoint' (issue 10, point 20)."""
    rt = os.path.join(work, "rt")
    afile = os.path.join(work, "a-file")
    write(afile, "not a directory\n")
    p = spawn([HEAT, 96, 10 ** 9, "--ckpt-dir", afile], env=env(CKPT_RUNTIME_DIR=rt),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.path.exists(os.path.join(rt, "%d.json" % p.pid)), "registration")
        for i in range(2):
            c = run([CKPT, "checkpoint", p.pid, "--timeout", 10], env_extra={"CKPT_RUNTIME_DIR": rt})
            check(c.returncode == 1 and "failed to checkpoint" in c.stderr and "a-file" in c.stderr,
                  "attempt %d: rc %d %s" % (i + 1, c.returncode, c.stderr))
        check(p.poll() is None, "the program stopped")
    finally:
        p.kill()
        p.wait()


def test_concurrent_checkpoint_exit(work):
    """Three `ckpt checkpoint PID --exit` at once (issue 10, point 20); one
    of them is descheduled until the program has ended and another requester
    has collected its registration: each reports the image that ended the
    program, none says it "exited without writing a checkpoint"."""
    rt = os.path.join(work, "rt")
    d = os.path.join(work, "d")
    p = spawn([HEAT, 96, 150000, "--ckpt-dir", d], env=env(CKPT_RUNTIME_DIR=rt),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    cs = []
    try:
        wait_for(lambda: os.path.exists(os.path.join(rt, "%d.json" % p.pid)), "registration")
        os.kill(p.pid, signal.SIGSTOP)  # every request is sent before the program acts on one
        cs = [spawn([CKPT, "checkpoint", str(p.pid), "--exit", "--json"], env=env(CKPT_RUNTIME_DIR=rt),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
        time.sleep(1.0)  # they have read the registration, signalled and are waiting
        os.kill(cs[1].pid, signal.SIGSTOP)
        os.kill(p.pid, signal.SIGCONT)
        p.wait(timeout=60)
        check(p.returncode == 75, "program rc %d: %s" % (p.returncode, p.stderr.read()))
        outs = {}
        for i in (0, 2):
            outs[i] = cs[i].communicate(timeout=120)
        os.kill(cs[1].pid, signal.SIGCONT)
        outs[1] = cs[1].communicate(timeout=120)
        image = os.path.join(d, images(d)[0]) if len(images(d)) == 1 else None
        check(image is not None, "images %s" % images(d))
        for i, c in enumerate(cs):
            out, err = outs[i]
            check(c.returncode == 0, "requester %d: rc %d %s" % (i, c.returncode, err))
            j = json.loads(out)
            check(j["exited"] and j["image"] == image, "requester %d: %s" % (i, out))
    finally:
        for x in [p] + cs:
            if x.poll() is None:
                x.send_signal(signal.SIGCONT)
                x.kill()
                x.wait()
    check(os.listdir(rt) == [], "registrations left: %s" % os.listdir(rt))


def test_terminal_escapes_are_not_printed(work):
    """Strings from an image reach the terminal escaped (issue 10, point 20)."""
    name = "x\x1b]0;pwned\x07\x1b[2J\u009b31m"
    run([HEAT, 32, 20, "--ckpt-dir", work, "--ckpt-stop-at", 5, "--ckpt-name", name], check=75)
    img = newest_image(work)
    for cmd in [[CKPT, "inspect", img], [CKPT, "verify", img]]:
        p = run(cmd, check=0)
        check("\x1b" not in p.stdout and "\x07" not in p.stdout and "\u009b" not in p.stdout,
              "%s printed control characters: %r" % (cmd[1], p.stdout[:300]))
        check("\\x1b]0;pwned\\x07" in p.stdout, "%s: escaped name missing: %r" % (cmd[1], p.stdout[:300]))
    j = json.loads(run([CKPT, "inspect", "--json", img], check=0).stdout)
    check(j["meta"]["program.name"] == name, "JSON keeps the exact name: %r" % j["meta"]["program.name"])


def resident(path):
    """The share of the file's bytes in the page cache (util-linux fincore)."""
    out = run(["fincore", "-b", "-n", "-o", "RES,SIZE", path], check=0).stdout.split()
    return int(out[0]) / max(1, int(out[1]))


def direct_io_here(d):
    """True where d's file system does direct I/O and keeps files on a disk (not tmpfs)."""
    fs = run(["stat", "-f", "-c", "%T", d], check=0).stdout.strip()
    p = run(["dd", "if=/dev/zero", "of=" + os.path.join(d, "probe"), "bs=4096", "count=1", "oflag=direct"])
    if os.path.exists(os.path.join(d, "probe")):
        os.unlink(os.path.join(d, "probe"))
    return p.returncode == 0 and fs != "tmpfs"


def test_images_past_the_page_cache(work):
    """A large image is written straight to the disk (little of it stays in the page cache), through the
    page cache with --ckpt-page-cache or CKPT_PAGE_CACHE=1, and resumes exactly from either, cold or warm;
    a cold resume reads past the page cache too."""
    if not shutil.which("fincore"):
        print("skip test_images_past_the_page_cache: needs fincore (util-linux)")
        return
    ref = result_line(run([HEAT, 2000, 30], check=0).stdout)
    imgs = {}
    for how, extra, env in [("direct", [], None), ("option", ["--ckpt-page-cache"], None),
                            ("env", [], {"CKPT_PAGE_CACHE": "1"})]:
        d = os.path.join(work, how)
        run([HEAT, 2000, 30, "--ckpt-dir", d, "--ckpt-stop-at", 12] + extra, check=75, env_extra=env)
        imgs[how] = newest_image(d)
        check(os.path.getsize(imgs[how]) > 30 << 20, "the image is smaller than expected")
        run([CKPT, "verify", imgs[how]], check=0)
    direct_here = direct_io_here(work)
    if direct_here:
        check(resident(imgs["direct"]) < 0.1, "the direct image is %.0f%% cached" % (100 * resident(imgs["direct"])))
        for how in ("option", "env"):
            check(resident(imgs[how]) > 0.9, "--ckpt-page-cache (%s): %.0f%% cached" % (how, 100 * resident(imgs[how])))
    for how in ("direct", "option"):
        for cold in (True, False):
            if cold:
                evict(imgs[how])
            p = run([HEAT, "--ckpt-resume", imgs[how], "--ckpt-dir", os.path.join(work, "r")], check=0)
            check(result_line(p.stdout) == ref, "%s image, %s resume: result differs" % (how, "cold" if cold else "warm"))
            if cold and direct_here:
                check(resident(imgs[how]) < 0.1, "a cold resume filled the page cache: %.0f%%" %
                      (100 * resident(imgs[how])))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--inner-default-tmp"]:
        inner_default_tmp(sys.argv[2])
        sys.exit(0)
    run_tests(globals(), sys.argv[1:])
