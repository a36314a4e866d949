"""Damaged images: truncated at many offsets, single bytes flipped in the
header, the section headers, the frames' payload and the section table.
Every damaged copy must give a clear error and a non-zero exit from
`ckpt verify`, `ckpt inspect` and the program's own resume — never a crash
(run this under the ASan+UBSan build too) and never a silent resume."""
import os
import random
import shutil
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from ckpttest import *  # noqa

CKPT = os.path.join(BIN, "ckpt")
NBODY = os.path.join(BIN, "nbody")


def regions(data):
    """Offsets of interesting places: header, each section header, payload, table, trailer."""
    size = len(data)
    table_off = struct.unpack_from("<Q", data, size - 32)[0]
    out = {"header": list(range(0, 32)), "trailer": list(range(size - 32, size)),
           "table": list(range(table_off, size - 32))}
    sect = []
    pos = data.find(b"SECT")
    while pos != -1 and pos < table_off:
        sect.append(pos)
        pos = data.find(b"SECT", pos + 4)
    out["section headers"] = [p + k for p in sect for k in range(0, 24)]
    out["payload"] = list(range(32, table_off))
    return out


def expect_rejected(cmd, what, work):
    p = run(cmd, cwd=work)
    if crashed(p):
        fail("%s: crashed (%d)\n%s" % (what, p.returncode, p.stderr[-3000:]))
    if p.returncode == 0:
        fail("%s: accepted a damaged image\n%s" % (what, p.stdout[-2000:]))
    if "ckpt" not in p.stderr and "BAD" not in p.stdout:
        fail("%s: no error message\n%s%s" % (what, p.stdout, p.stderr))
    return p


def main():
    work = tempdir("robust")
    try:
        run([NBODY, 12, 60, "--ckpt-dir", work, "--ckpt-stop-at", 20], check=75)
        img = newest_image(work)
        data = open(img, "rb").read()
        bad = os.path.join(work, "bad.000001.ckpt")
        rng = random.Random(1234)
        count = 0
        resume_checked = 0
        # Truncations: every offset in the first and last 300 bytes, and a spread in between.
        cuts = sorted(set(list(range(0, 300)) + list(range(len(data) - 300, len(data))) +
                          list(range(300, len(data) - 300, max(1, len(data) // 200)))))
        # The sanitizer build samples every STRIDE-th case (a process start
        # costs ~0.2 s there; the fuzzer covers the reader under ASan besides).
        stride = int(os.environ.get("CKPT_ROBUSTNESS_STRIDE", "1"))
        cuts = cuts[::stride]
        for cut in cuts:
            with open(bad, "wb") as f:
                f.write(data[:cut])
            expect_rejected([CKPT, "verify", bad], "verify of a copy cut at %d" % cut, work)
            count += 1
            if cut % 37 == 0:
                expect_rejected([NBODY, "--ckpt-resume", bad, "--ckpt-dir", work + "/x"], "resume cut at %d" % cut, work)
                resume_checked += 1
        # Flips: a sample of offsets in each region, each byte XOR a random non-zero mask.
        for name, offs in regions(data).items():
            n = max(1, 60 // stride)
            sample = offs if len(offs) <= n else rng.sample(offs, n)
            for off in sample:
                b = bytearray(data)
                b[off] ^= rng.randrange(1, 256)
                with open(bad, "wb") as f:
                    f.write(bytes(b))
                p = expect_rejected([CKPT, "verify", bad], "verify with byte %d (%s) flipped" % (off, name), work)
                count += 1
                if off % 5 == 0:
                    expect_rejected([CKPT, "inspect", bad], "inspect with byte %d flipped" % off, work)
                    expect_rejected([NBODY, "--ckpt-resume", bad, "--ckpt-dir", work + "/x"],
                                    "resume with byte %d (%s) flipped" % (off, name), work)
                    resume_checked += 1
        # The intact image still verifies and resumes.
        run([CKPT, "verify", img], check=0)
        run([NBODY, "--ckpt-resume", img, "--ckpt-dir", work + "/y"], check=0)
        print("ok   %d damaged copies rejected by verify, %d by the program's resume" % (count, resume_checked))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
