"""End-to-end: the examples and the `ckpt` CLI on this platform.
Checkpoints at chosen safepoints and from outside (`ckpt checkpoint PID`),
resumes through `ckpt resume`, inspects, verifies and converts images, and
checks that every resumed run prints the uninterrupted run's result."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from ckpttest import *  # noqa

CKPT = os.path.join(BIN, "ckpt")
HEAT = os.path.join(BIN, "heat")
NBODY = os.path.join(BIN, "nbody")


def test_stop_and_resume(work):
    ref = result_line(run([HEAT, 96, 300], check=0).stdout)
    # Three interruptions, each resumed through `ckpt resume`.
    p = run([HEAT, 96, 300, "--ckpt-dir", work, "--ckpt-stop-at", 70], check=75)
    check("checkpoint 1 written" in p.stderr, "no progress message: " + p.stderr)
    for i in range(2):
        img = newest_image(work)
        p = run([CKPT, "resume", img], check=75, env_extra={"CKPT_STOP_AT": 70})
    p = run([CKPT, "resume", work], check=0)
    check(result_line(p.stdout) == ref, "resumed result differs:\n%s\n%s" % (result_line(p.stdout), ref))
    # --ckpt-keep 2 (the default) kept the two newest.
    check(images(work) == ["heat.000002.ckpt", "heat.000003.ckpt"], "kept images: %s" % images(work))


def test_inspect_and_verify(work):
    run([NBODY, 16, 100, "--ckpt-dir", work, "--ckpt-stop-at", 40], check=75)
    img = newest_image(work)
    j = json.loads(run([CKPT, "inspect", "--json", "--values", img], check=0).stdout)
    check(j["kind"] == "program" and j["format"]["major"] == 1, "header: %s" % j)
    check(j["meta"]["producer.os"] == "linux" and j["meta"]["program.name"] == "nbody", "meta: %s" % j["meta"])
    check(j["meta"]["program.args"] == ["16", "100"], "args: %s" % j["meta"]["program.args"])
    check(j["progress"]["stages_done"] == ["setup", "setup/momentum", "setup/place"], "stages: %s" % j["progress"])
    names = {v["name"]: v for v in j["variables"]}
    check(names["step"]["type"] == "u64" and names["step"]["value"] == "40", "step: %s" % names["step"])
    check(names["bodies"]["type"] == "vector<Body{x:f64,y:f64,z:f64,vx:f64,vy:f64,vz:f64,mass:f64}>",
          "bodies: %s" % names["bodies"])
    check(names["bodies"]["raw_bytes"] == 1 + 16 * 7 * 8, "bodies size: %s" % names["bodies"])
    check(names["rng"]["type"] == "mt19937_64", "rng: %s" % names["rng"])
    check(j["checksums"] == "ok", "checksums: %s" % j["checksums"])
    p = run([CKPT, "inspect", img], check=0)
    check("nbody" in p.stdout and "checksums   ok" in p.stdout, p.stdout)
    p = run([CKPT, "verify", img], check=0)
    check(p.stdout.startswith("OK"), p.stdout)


def test_convert_codecs(work):
    ref = result_line(run([HEAT, 64, 200], check=0).stdout)
    run([HEAT, 64, 200, "--ckpt-dir", work, "--ckpt-stop-at", 100], check=75)
    img = newest_image(work)
    raw_size = os.path.getsize(img)
    codecs = run([CKPT, "--version"], check=0).stdout
    for codec in ["zstd", "zlib", "none"]:
        if codec not in codecs:
            continue
        out = os.path.join(work, "conv-%s.000001.ckpt" % codec)
        run([CKPT, "convert", img, "--codec", codec, "-o", out], check=0)
        j = json.loads(run([CKPT, "inspect", "--json", out], check=0).stdout)
        grid = [v for v in j["variables"] if v["name"] == "grid"][0]
        check(grid["codec"] == codec, "grid codec %s" % grid)
        if codec != "none":
            check(os.path.getsize(out) < raw_size, "%s did not shrink the image" % codec)
        p = run([HEAT, "--ckpt-resume", out, "--ckpt-dir", os.path.join(work, "after-" + codec)], check=0)
        check(result_line(p.stdout) == ref, "resume after convert to %s differs" % codec)
    # A program can write compressed images itself.
    zd = os.path.join(work, "z")
    if "zstd" in codecs:
        run([HEAT, 64, 200, "--ckpt-dir", zd, "--ckpt-stop-at", 50, "--ckpt-codec", "zstd"], check=75)
        check(os.path.getsize(newest_image(zd)) < raw_size, "zstd image not smaller")
        check(result_line(run([HEAT, "--ckpt-resume", zd], check=0).stdout) == ref, "zstd resume differs")


def test_external_checkpoint(work):
    ref = result_line(run([HEAT] + HEAT_LONG, check=0, timeout=600).stdout)
    rt = os.path.join(work, "run")
    e = env(CKPT_RUNTIME_DIR=rt)
    proc = subprocess.Popen([HEAT] + HEAT_LONG + ["--ckpt-dir", work], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=e)
    try:
        reg = os.path.join(rt, "%d.json" % proc.pid)
        for _ in range(500):
            if os.path.exists(reg):
                break
            time.sleep(0.01)
        check(os.path.exists(reg), "no registration file " + reg)
        # A checkpoint while it keeps running, then one that stops it.
        p = run([CKPT, "checkpoint", str(proc.pid), "--json"], check=0, env_extra={"CKPT_RUNTIME_DIR": rt})
        first = json.loads(p.stdout)["image"]
        check(os.path.exists(first), "reported image missing: " + first)
        check(proc.poll() is None, "program stopped after a plain checkpoint")
        p = run([CKPT, "checkpoint", str(proc.pid), "--exit"], check=0, env_extra={"CKPT_RUNTIME_DIR": rt})
        second = p.stdout.strip()
        out, err = proc.communicate(timeout=60)
        check(proc.returncode == 75, "exit status %d after --exit; stderr %s" % (proc.returncode, err))
        check(not os.path.exists(reg), "registration left behind")
    finally:
        if proc.poll() is None:
            proc.kill()
    check(second != first and os.path.exists(second), "second image: %s" % second)
    p = run([CKPT, "resume", second], check=0, timeout=600)
    check(result_line(p.stdout) == ref, "externally checkpointed run differs")
    # Resuming the first image (mid-run, continues) gives the same answer too.
    p = run([HEAT, "--ckpt-resume", first, "--ckpt-dir", os.path.join(work, "b")], check=0, timeout=600)
    check(result_line(p.stdout) == ref, "first image's resume differs")


def test_list(work):
    """`ckpt list` shows this user's running programs and groups (never a group's secret), counts
    their checkpoints, and removes the registration of a process that is gone."""
    rt = os.path.join(work, "run")
    e = env(CKPT_RUNTIME_DIR=rt)
    heat = subprocess.Popen([HEAT] + HEAT_LONG + ["--ckpt-dir", work], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=e)
    group = subprocess.Popen([CKPT, "run", "--name", "tallies", "-n", "2", "--dir", os.path.join(work, "g"), "--",
                              os.path.join(BIN, "tally"), "100000000", "1000000000"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, env=e)
    try:
        for _ in range(1000):
            if os.path.exists(os.path.join(rt, "%d.json" % heat.pid)) and \
               os.path.exists(os.path.join(rt, "%d.json" % group.pid)):
                break
            time.sleep(0.01)
        # A registration left by a process that is gone.
        gone = subprocess.Popen(["true"])
        gone.wait()
        ghost = os.path.join(rt, "%d.json" % gone.pid)
        fd = os.open(ghost, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, json.dumps({"pid": gone.pid, "program": "ghost", "platform": "linux-x86_64",
                                 "start_time": 1}).encode())
        os.close(fd)
        run([CKPT, "checkpoint", str(heat.pid)], check=0, env_extra={"CKPT_RUNTIME_DIR": rt})
        p = run([CKPT, "list", "--json"], check=0, env_extra={"CKPT_RUNTIME_DIR": rt})
        check("secret" not in p.stdout and "port" not in p.stdout, "ckpt list shows a group's key:\n" + p.stdout)
        running = {r["pid"]: r for r in json.loads(p.stdout)["running"]}
        h = running.get(heat.pid)
        check(h is not None and h["kind"] == "program" and h["name"] == "heat" and h["state"] == "running"
              and h["checkpoints"] == 1 and os.path.exists(h["last_image"]) and h["dir"] == work,
              "heat in ckpt list --json: %s" % p.stdout)
        g = running.get(group.pid)
        check(g is not None and g["kind"] == "group" and g["name"] == "tallies" and g["members"] == 2,
              "the group in ckpt list --json: %s" % p.stdout)
        check(gone.pid not in running and not os.path.exists(ghost), "a gone process's registration: %s" % p.stdout)
        p = run([CKPT, "list"], check=0, env_extra={"CKPT_RUNTIME_DIR": rt})
        check(("%d" % heat.pid) in p.stdout and "tallies (2 members)" in p.stdout, "ckpt list:\n" + p.stdout)
    finally:
        for proc in (heat, group):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (heat, group):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    p = run([CKPT, "list"], check=0, env_extra={"CKPT_RUNTIME_DIR": rt})
    check(p.stdout.startswith("no ckpt programs or groups are running"), "after the end:\n" + p.stdout)


def test_periodic_and_auto_resume(work):
    # --ckpt-every: a run long enough for several periods writes several images
    # (keep 3), and resuming the newest gives the uninterrupted result.
    args = [HEAT] + HEAT_LONG
    ref = result_line(run(args, check=0, timeout=600).stdout)
    p = run(args + ["--ckpt-dir", work, "--ckpt-every", "0.2", "--ckpt-keep", 3], check=0, timeout=600)
    check(result_line(p.stdout) == ref, "periodic checkpoints changed the result")
    n = p.stderr.count("written to")
    check(n >= 2, "expected periodic checkpoints, got %d: %s" % (n, p.stderr))
    check(len(images(work)) == min(n, 3), "kept %s of %d" % (images(work), n))
    p = run([HEAT, "--ckpt-resume", newest_image(work), "--ckpt-dir", os.path.join(work, "r")], check=0, timeout=600)
    check(result_line(p.stdout) == ref, "resume of a periodic image differs")
    # --ckpt-resume auto: a fresh start when DIR has no image, a resume when it has.
    auto = os.path.join(work, "auto")
    p = run([HEAT, 64, 200, "--ckpt-dir", auto, "--ckpt-resume", "auto", "--ckpt-stop-at", 50], check=75)
    check("resumed from" not in p.stderr, "auto resumed from nothing: " + p.stderr)
    p = run([HEAT, 64, 200, "--ckpt-dir", auto, "--ckpt-resume", "auto"], check=0)
    check("resumed from" in p.stderr, "auto did not resume: " + p.stderr)
    check(result_line(p.stdout) == result_line(run([HEAT, 64, 200], check=0).stdout), "auto resume differs")


def test_resume_takes_only_this_programs_images(work):
    # Images of other programs only, two of them with every variable heat has
    # (heat run as "heat2" and "heat.v2"): `auto` starts fresh and says so.
    run([NBODY, 8, 50, "--ckpt-dir", work, "--ckpt-stop-at", 10], check=75)
    for other in ["heat2", "heat.v2"]:
        run([HEAT, 64, 200, "--ckpt-dir", work, "--ckpt-stop-at", 150, "--ckpt-name", other], check=75)
    ref = result_line(run([HEAT, 64, 200], check=0).stdout)
    p = run([HEAT, 64, 200, "--ckpt-dir", work, "--ckpt-resume", "auto"], check=0)
    check(result_line(p.stdout) == ref, "auto took another program's image:\n%s\n%s" % (p.stdout, p.stderr))
    lines = [l for l in p.stderr.splitlines() if "starting fresh" in l]
    check(len(lines) == 1 and "no checkpoint images of program 'heat'" in lines[0] and "'heat2'" in lines[0],
          "auto did not say it starts fresh: " + p.stderr)
    p = run([HEAT, 64, 200, "--ckpt-dir", work, "--ckpt-resume", "auto", "--ckpt-quiet"], check=0)
    check(p.stderr == "", "--ckpt-quiet still printed: " + p.stderr)
    # A directory with no image of this program is an error; so is another program's file.
    p = run([HEAT, "--ckpt-resume", work])
    check(p.returncode == 3 and "no checkpoint images of program 'heat'" in p.stderr, p.stderr)
    p = run([HEAT, "--ckpt-resume", os.path.join(work, "heat2.000001.ckpt")])
    check(p.returncode == 3 and "image of program 'heat2', not of this program 'heat'" in p.stderr, p.stderr)
    # Under its own name, each finds its own image.
    p = run([HEAT, "--ckpt-dir", work, "--ckpt-resume", "auto", "--ckpt-name", "heat.v2"], check=0)
    check("resumed from" in p.stderr and "heat.v2.000001.ckpt" in p.stderr, p.stderr)
    check(result_line(p.stdout) == ref, "heat.v2 resume differs")
    # `ckpt resume IMAGE` runs the recorded program under the image's name.
    p = run([CKPT, "resume", os.path.join(work, "heat2.000001.ckpt")], check=0)
    check(result_line(p.stdout) == ref, "ckpt resume of heat2's image: %s %s" % (p.stdout, p.stderr))


def test_distributions_resume_bit_identically(work):
    # Nine distributions with hidden state, stopped twice at odd points (the
    # normal's cached value pending) and resumed: the uninterrupted result.
    dists = os.path.join(BIN, "dists")
    ref = result_line(run([dists, 400], check=0).stdout)
    run([dists, 400, "--ckpt-dir", work, "--ckpt-stop-at", 77], check=75)
    run([dists, "--ckpt-resume", work, "--ckpt-dir", work, "--ckpt-stop-at", 151], check=75)
    p = run([dists, "--ckpt-resume", work, "--ckpt-dir", work], check=0)
    check(result_line(p.stdout) == ref, "resumed distributions differ:\n%s\n%s" % (result_line(p.stdout), ref))
    j = json.loads(run([CKPT, "inspect", "--json", "--values", newest_image(work)], check=0).stdout)
    v = {x["name"]: x for x in j["variables"]}
    check(v["lognormal"]["type"] == "lognormal_distribution<f64>" and v["lognormal"]["value"].startswith('"0 0.5 '),
          "lognormal: %s" % v["lognormal"])


def test_checkpoint_errors(work):
    rt = os.path.join(work, "run")
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        p = run([CKPT, "checkpoint", str(sleeper.pid)], env_extra={"CKPT_RUNTIME_DIR": rt})
        check(p.returncode == 1 and "not a ckpt program" in p.stderr, "non-ckpt pid: %d %s" % (p.returncode, p.stderr))
        check(sleeper.poll() is None, "the checkpoint request harmed a non-ckpt process")
    finally:
        sleeper.kill()
        sleeper.wait()
    p = run([CKPT, "checkpoint", "999999"], env_extra={"CKPT_RUNTIME_DIR": rt})
    check(p.returncode == 1 and "no process" in p.stderr, p.stderr)


def test_resume_errors(work):
    run([NBODY, 8, 50, "--ckpt-dir", work, "--ckpt-stop-at", 10], check=75)
    img = newest_image(work)
    # The wrong program: nbody's image into heat, refused naming both programs.
    p = run([HEAT, "--ckpt-resume", img])
    check(p.returncode == 3 and "image of program 'nbody', not of this program 'heat'" in p.stderr, p.stderr)
    # A missing file, a non-image, an empty directory.
    p = run([HEAT, "--ckpt-resume", os.path.join(work, "nope.ckpt")])
    check(p.returncode == 3 and "No such file" in p.stderr, p.stderr)
    junk = os.path.join(work, "junk.ckpt")
    with open(junk, "w") as f:
        f.write("this is not an image\n" * 10)
    p = run([HEAT, "--ckpt-resume", junk])
    check(p.returncode == 3 and "not a ckpt image" in p.stderr, p.stderr)
    os.mkdir(os.path.join(work, "empty"))
    p = run([HEAT, "--ckpt-resume", os.path.join(work, "empty")])
    check(p.returncode == 3 and "no checkpoint images" in p.stderr, p.stderr)
    # Bad options.
    p = run([HEAT, "--ckpt-bogus"])
    check(p.returncode == 2 and "unknown option --ckpt-bogus" in p.stderr, p.stderr)
    p = run([HEAT, "--ckpt-codec", "lz4"])
    check(p.returncode == 2 and "unknown codec" in p.stderr, p.stderr)
    p = run([HEAT, "--ckpt-help"], check=0)
    check("--ckpt-resume" in p.stdout, p.stdout)
    p = run([CKPT, "inspect", junk])
    check(p.returncode == 3 and "not a ckpt image" in p.stderr, p.stderr)
    p = run([CKPT, "bogus-verb"])
    check(p.returncode == 2, "bogus verb exit %d" % p.returncode)


def test_c_api(work):
    wave = os.path.join(BIN, "wave_c")
    ref = result_line(run([wave, 500, 900], check=0).stdout)
    run([wave, 500, 900, "--ckpt-dir", work, "--ckpt-stop-at", 300], check=75)
    j = json.loads(run([CKPT, "inspect", "--json", newest_image(work)], check=0).stdout)
    types = {v["name"]: v["type"] for v in j["variables"]}
    check(types == {"params": "array<u64,2>", "step": "array<u64,1>", "u": "array<f64,500>",
                    "prev": "array<f64,500>", "checksum_steps": "array<i64,1>"}, "C types: %s" % types)
    check(j["progress"]["stages_done"] == ["init"], "C stage: %s" % j["progress"])
    p = run([wave, "--ckpt-resume", work, "--ckpt-dir", work, "--ckpt-stop-at", 300], check=75)
    p = run([wave, "--ckpt-resume", work, "--ckpt-dir", work], check=0)
    check(result_line(p.stdout) == ref, "C API resume differs:\n%s\n%s" % (p.stdout, ref))


def test_non_utf8_bytes(work):
    # Paths and arguments are bytes. JSON output keeps them losslessly: a string
    # that is not valid UTF-8 becomes an array of its byte values.
    wb = os.fsencode(work)
    d = os.path.join(wb, b"d\xff")
    os.mkdir(d)
    prog = os.path.join(d, b"he\xfeat")
    shutil.copy(HEAT, prog)
    rt = os.path.join(work, "run")
    e = env(CKPT_RUNTIME_DIR=rt)
    p = subprocess.run([prog, b"48", b"100", b"--ckpt-dir", d, b"--ckpt-stop-at", b"20", b"x\x80y"],
                       capture_output=True, env=e, timeout=300)
    check(p.returncode == 75, "program with a non-UTF-8 path: %d %s" % (p.returncode, p.stderr))
    img = [f for f in os.listdir(d) if f.endswith(b".ckpt")]
    check(len(img) == 1, "images: %s" % img)
    img = os.path.join(d, img[0])
    for verb in (["inspect", "--json", "--values"], ["verify", "--json"]):
        p = subprocess.run([os.fsencode(CKPT)] + [v.encode() for v in verb] + [img], capture_output=True,
                           timeout=300)
        check(p.returncode == 0, "%s: exit %d %s" % (verb, p.returncode, p.stderr))
        j = json.loads(p.stdout)  # strict UTF-8 JSON
        if verb[0] == "inspect":
            check(bytes(j["path"]) == img, "path: %s" % j["path"])
            check(bytes(j["meta"]["program.path"]) == prog, "program.path: %s" % j["meta"]["program.path"])
            check(j["meta"]["program.name"] == [104, 101, 0xfe, 97, 116], "name: %s" % j["meta"]["program.name"])
            check(j["meta"]["program.args"][:2] == ["48", "100"] and bytes(j["meta"]["program.args"][2]) == b"x\x80y",
                  "args: %s" % j["meta"]["program.args"])
    # `ckpt checkpoint` reads the registration of such a program.
    proc = subprocess.Popen([prog, b"96", b"150000", b"--ckpt-dir", d], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=e)
    try:
        reg = os.path.join(rt, "%d.json" % proc.pid)
        for _ in range(500):
            if os.path.exists(reg):
                break
            time.sleep(0.01)
        p = subprocess.run([CKPT, "checkpoint", str(proc.pid), "--json"], capture_output=True, env=e, timeout=120)
        check(p.returncode == 0, "checkpoint: exit %d %s" % (p.returncode, p.stderr))
        written = bytes(json.loads(p.stdout)["image"])
        check(os.path.dirname(written) == d and os.path.exists(written), "image: %s" % written)
    finally:
        proc.kill()
        proc.wait()
    if "dump" not in run([CKPT, "--help"], check=0).stdout:
        return  # no transparent engine in this build
    # The engine: `ckpt dump --json` of a process whose executable and image
    # directory have such names (it used to abort after killing the target).
    sl = os.path.join(d, b"sl\xffep")
    shutil.copy("/bin/sleep", sl)
    target = subprocess.Popen([sl, b"300"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # a pipe to us would be an external pipe
    try:
        time.sleep(0.3)
        imgdir = os.path.join(wb, b"img\xfa")
        p = subprocess.run([os.fsencode(CKPT), b"dump", str(target.pid).encode(), b"-D", imgdir, b"--json"],
                           capture_output=True, timeout=300)
        check(p.returncode == 0, "dump: exit %d %s" % (p.returncode, p.stderr))
        check(bytes(json.loads(p.stdout)["image"]) == os.path.join(imgdir, b"process.ckpt"), p.stdout)
        p = subprocess.run([os.fsencode(CKPT), b"inspect", b"--json", imgdir], capture_output=True, timeout=300)
        check(p.returncode == 0 and bytes(json.loads(p.stdout)["process"]["exe"]) == sl, "inspect: %s" % p.stdout)
    finally:
        target.kill()
        target.wait()


def test_help(work):
    for verb in ["inspect", "verify", "convert", "checkpoint", "resume"]:
        p = run([CKPT, verb, "--help"], check=0)
        check("Usage" in p.stdout or "usage" in p.stdout.lower(), verb + ": " + p.stdout)


if __name__ == "__main__":
    run_tests(globals(), sys.argv[1:])
