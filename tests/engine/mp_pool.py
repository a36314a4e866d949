#!/usr/bin/env python3
# CPython multiprocessing, unmodified, under the zdtm contract: a fork Pool
# of workers sums squares over ranges; each writes its partial sum into a
# multiprocessing.shared_memory block (POSIX shm) and counts finished tasks
# in a Value under its Lock (a sem_open semaphore); results come back
# through the Pool's pipes. DIR/ready is written a fifth of the way in; the
# dump and restore happen during the rest; the answer is checked against
# the closed form.   mp_pool.py DIR
import multiprocessing as mp
import os
import sys
from multiprocessing import shared_memory

N_TASKS, K = 2000, 25000  # long enough for two dumps and restores under a sanitizer
D = sys.argv[1]
ctx = mp.get_context("fork")
shm = shared_memory.SharedMemory(create=True, size=8 * N_TASKS)
with open(os.path.join(D, "shm_files"), "w") as f:
    f.write(shm.name.lstrip("/") + "\n")
done = ctx.Value("q", 0)


def work(i):
    s = 0
    for j in range(i * K, (i + 1) * K):
        s += j * j
    shm.buf[8 * i:8 * i + 8] = (s % (1 << 63)).to_bytes(8, "little")
    with done.get_lock():
        done.value += 1
    return i, s


def squares(n):  # sum of j*j for j < n
    return (n - 1) * n * (2 * n - 1) // 6


def result(text):
    with open(os.path.join(D, "result.tmp"), "w") as f:
        f.write(text + "\n")
    os.rename(os.path.join(D, "result.tmp"), os.path.join(D, "result"))


total, seen = 0, set()
with ctx.Pool(2) as pool:
    for n, (i, s) in enumerate(pool.imap_unordered(work, range(N_TASKS), chunksize=4)):
        if i in seen:
            result(f"FAIL: task {i} answered twice")
            sys.exit(1)
        seen.add(i)
        total += s
        if n == N_TASKS // 5:
            with open(os.path.join(D, "ready"), "w") as f:
                f.write("ready\n")
ok = total == squares(N_TASKS * K) and len(seen) == N_TASKS and done.value == N_TASKS
for i in range(N_TASKS):
    want = (squares((i + 1) * K) - squares(i * K)) % (1 << 63)
    ok = ok and int.from_bytes(shm.buf[8 * i:8 * i + 8], "little") == want
shm.close()
shm.unlink()
result(f"PASS total={total}" if ok else f"FAIL: total={total} tasks={len(seen)} counted={done.value}")
