"""End-to-end: `ckpt resume IMAGE` without `-- PROGRAM` runs the program an
image names, so it refuses an image that is not the caller's own (another
user's, or one others may write) unless the program is named explicitly
(docs/cli.md, "ckpt resume")."""
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from ckpttest import *  # noqa

CKPT = os.path.join(BIN, "ckpt")
HEAT = os.path.join(BIN, "heat")
NOBODY = 65534


def test_resume_refuses_other_users_image(work):
    if os.geteuid() != 0:
        print("skip: needs root to give an image to another user")
        sys.exit(SKIP)
    ref = result_line(run([HEAT, 64, 120], check=0).stdout)
    run([HEAT, 64, 120, "--ckpt-dir", work, "--ckpt-stop-at", 40], check=75)
    img = newest_image(work)
    # The caller's own image: the recorded program runs.
    p = run([CKPT, "resume", img, "--dry-run"], check=0)
    check(HEAT in p.stdout, "dry run does not show the recorded program: " + p.stdout)
    # Another user's image: refused, naming the owner and the way out.
    os.chown(img, NOBODY, NOBODY)
    for target in (img, work):
        p = run([CKPT, "resume", target, "--dry-run"], check=3)
        check("uid %d" % NOBODY in p.stderr and "-- PROGRAM" in p.stderr, "refusal lacks its reason: " + p.stderr)
        check(HEAT not in p.stdout, "the program was named anyway: " + p.stdout)
        p = run([CKPT, "resume", target], check=3)
    # Named explicitly: fine, and it resumes to the right result.
    p = run([CKPT, "resume", img, "--", HEAT], check=0)
    check(result_line(p.stdout) == ref, "resume with the program named differs: " + p.stdout)
    # The caller's file, but others may write it: refused too.
    os.chown(img, 0, 0)
    os.chmod(img, 0o666)
    p = run([CKPT, "resume", img, "--dry-run"], check=3)
    check("may write" in p.stderr, "refusal of a world-writable image lacks its reason: " + p.stderr)
    os.chmod(img, 0o600)
    run([CKPT, "resume", img, "--dry-run"], check=0)


def test_help_says_what_runs(work):
    p = run([CKPT, "resume", "--help"], check=0)
    text = " ".join(p.stdout.split())
    check("program path recorded in the image" in text and "not yours" in text, "resume --help: " + p.stdout)


if __name__ == "__main__":
    run_tests(globals())
