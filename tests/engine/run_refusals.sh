#!/bin/bash
# What the engine cannot save is refused before anything is stopped, named,
# and the process runs on untouched (issue 10, points 9, 10 and 12); what it
# can save across a pipe is restored. Real programs where possible.
#   run_refusals.sh CKPT BINDIR CASE
# CASE: flock-inherited | flock-through-mapping
#       | eventfd-shared-outside | epoll-closed-target | epoll-shared-closed
#       | external-pipe | external-pipe-accepted | tracer | tree-pipeline | widowed-pipe
set -u
. "$(dirname "$0")/lib.sh"
CKPT=$1 BIN=$2 CASE=$3
W=$(mktemp -d /tmp/ckpt-refusals.XXXXXX)
PID="" RJOB=""
cleanup() {
  [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null
  pkill -9 -f -- "$W" 2>/dev/null
  touch "$W/stop" "$W/go"  # lets the producer subshells (no $W in their arguments) end
  { [ -n "$RJOB" ] && wait "$RJOB"; wait; } 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
fail() { echo "FAIL ($CASE): $*"; exit 1; }
skip() { echo "SKIP ($CASE): $*"; exit 77; }
close_inherited_fds
# A refused dump: exit status 1, every TEXT in the message, no image.
refused() {  # PID "TEXT"... [-- DUMP OPTIONS]
  local pid=$1
  shift
  local texts=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do texts+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  "$CKPT" dump "$pid" -D "$W/img" "$@" >"$W/err" 2>&1
  local rc=$?
  [ "$rc" = 1 ] || { cat "$W/err"; fail "dump of $pid exited with $rc, expected a refusal (1)"; }
  for t in "${texts[@]}"; do grep -qF -- "$t" "$W/err" || { cat "$W/err"; fail "the refusal does not say '$t'"; }; done
  [ -e "$W/img/process.ckpt" ] && fail "an image was written"
  echo "refused: $(cat "$W/err")"
}
untouched() {  # PID...: running, not traced, not stopped
  for p in "$@"; do
    kill -0 "$p" 2>/dev/null || fail "process $p did not survive the refused dump"
    grep -q "^TracerPid:[[:space:]]*0$" "/proc/$p/status" || fail "process $p is still traced"
    local state
    state=$(awk '{print $3}' "/proc/$p/stat")
    [ "$state" = S ] || [ "$state" = R ] || fail "process $p is left in state $state"
  done
}

case $CASE in
  flock-inherited)
    # flock(1) takes the lock and runs the program, which inherits the
    # locked descriptor: /proc/locks names flock's PID, the program's
    # fdinfo shows the lock. Dumping the program alone, or the whole tree
    # from flock(1), is refused naming the lock in each process.
    flock "$W/lock" "$BIN/zdtm_counter" "$W" </dev/null >/dev/null 2>&1 &
    FPID=$!
    wait_exists "$W/ready" 30 || fail "zdtm_counter never became ready"
    PID=$(pgrep -P "$FPID" zdtm_counter)
    [ -n "$PID" ] || fail "no zdtm_counter under flock $FPID"
    refused "$PID" "process $PID (zdtm_counter) fd 3 ($W/lock) holds an flock() exclusive lock taken by process $FPID (flock) and shared through an inherited descriptor"
    refused "$FPID" "process $FPID (flock) fd 3 ($W/lock) holds an flock() exclusive lock" \
      "process $PID (zdtm_counter) fd 3 ($W/lock) holds" "and its descendants" -- --tree
    untouched "$PID" "$FPID"
    flock -n "$W/lock" true && fail "the lock was released"
    touch "$W/stop"
    wait "$FPID" || fail "flock/zdtm_counter failed"
    grep -q '^PASS' "$W/result" || fail "zdtm_counter: $(cat "$W/result")"
    ;;
  flock-through-mapping)
    # An flock whose descriptor was closed after the file was mapped: the
    # mapping keeps the open file description, and so the lock. No fdinfo
    # shows it; /proc/locks does, by inode.
    cat >"$W/maplock.py" <<'PY'
import ctypes, fcntl, os, sys, time
d = sys.argv[1]
fd = os.open(d + "/mapped", os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, b"x" * 4096)
fcntl.flock(fd, fcntl.LOCK_EX)
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
assert libc.mmap(None, 4096, 1, 1, fd, 0) not in (None, ctypes.c_void_p(-1).value)  # PROT_READ, MAP_SHARED
os.close(fd)
open(d + "/ready", "w").close()
while not os.path.exists(d + "/stop"):
    time.sleep(0.01)
PY
    python3 "$W/maplock.py" "$W" </dev/null >/dev/null 2>&1 &
    PID=$!
    wait_exists "$W/ready" 30 || fail "python3 never became ready"
    ls -l /proc/$PID/fd | grep -q "$W/mapped" && fail "the file is still open (the test is wrong)"
    refused "$PID" "maps $W/mapped, on which an flock() exclusive lock is held that no descriptor shows"
    untouched "$PID"
    flock -n "$W/mapped" true && fail "the lock was released"
    ;;
  eventfd-shared-outside)
    # python3 forks after creating an eventfd: dumping the child alone would
    # give it a copy its parent does not share (their wake-ups would stop
    # reaching each other). Refused, naming the file and the parent; with
    # --tree from the parent the two are dumped and restored together (the
    # zdtm_events tree case checks the values).
    cat >"$W/shared.py" <<'PY'
import os, sys, time
d = sys.argv[1]
efd = os.eventfd(0, os.EFD_NONBLOCK)
if os.fork() == 0:
    while not os.path.exists(d + "/stop"):
        os.eventfd_write(efd, 1)
        time.sleep(0.01)
    os._exit(0)
open(d + "/ready", "w").close()
n = 0
while not os.path.exists(d + "/stop"):
    try:
        n += os.eventfd_read(efd)
    except BlockingIOError:
        time.sleep(0.005)
os.wait()
open(d + "/count", "w").write(str(n))
PY
    python3 "$W/shared.py" "$W" </dev/null >/dev/null 2>&1 &
    PID=$!
    wait_exists "$W/ready" 30 || fail "python3 never became ready"
    CHILD=$(pgrep -P "$PID" python3)
    [ -n "$CHILD" ] || fail "no child of $PID"
    refused "$CHILD" "(anon_inode:[eventfd]) is shared with process $PID (python3)" "outside the dumped set" \
      "The dump would split such a file in two"
    untouched "$PID" "$CHILD"
    touch "$W/stop"
    wait "$PID" || fail "python3 failed"
    PID=""
    [ "$(cat "$W/count")" -gt 0 ] || fail "the parent read nothing from its child"
    ;;
  epoll-closed-target | epoll-shared-closed)
    # epoll-closed-target: an epoll watch whose descriptor number was closed
    # after the file was duplicated: the watch lives on (the file is open)
    # under a number the process no longer has, and could not be added
    # again at restore. epoll-shared-closed: an epoll file shared by parent
    # and child (made before the fork) is saved, but not when the child has
    # closed a descriptor it watches: that member could not prove the watch
    # is its own. Refused before the freeze, naming the process (the child)
    # and the descriptor.
    cat >"$W/ep.py" <<'PY'
import os, select, sys, time
d, mode = sys.argv[1], sys.argv[2]
ep = select.epoll()
r, w = os.pipe()
ep.register(r, select.EPOLLIN)
child = os.fork() if mode == "fork" else -1
if child != 0:
    if mode == "dup":
        os.dup2(r, 50)
if child <= 0:
    os.close(r)
    open(d + "/fd", "w").write(str(r))
    open(d + "/ready", "w").close()
while not os.path.exists(d + "/stop"):
    time.sleep(0.01)
if child > 0:
    os.wait()
PY
    MODE=dup TREE=()
    [ "$CASE" = epoll-shared-closed ] && MODE=fork TREE=(-- --tree)
    python3 "$W/ep.py" "$W" "$MODE" </dev/null >/dev/null 2>&1 &
    PID=$!
    wait_exists "$W/ready" 30 || fail "python3 never became ready"
    HOLDER=$PID
    [ "$MODE" = fork ] && HOLDER=$(pgrep -P "$PID")
    [ -n "$HOLDER" ] || fail "no child of $PID"
    refused "$PID" "process $HOLDER (python3) epoll fd" \
      "watches a file the process no longer holds as fd $(cat "$W/fd") (closed or replaced after it was added)" "${TREE[@]}"
    untouched "$PID" "$HOLDER"
    touch "$W/stop"
    wait "$PID" || fail "python3 failed"
    PID=""
    ;;
  external-pipe)
    # `producer | xz`: dumping xz alone would kill it and the producer
    # would die of SIGPIPE; the image could never be restored. Refused,
    # naming the pipe, xz's fd and the producer; xz finishes its work.
    head -c 1000000 /dev/urandom | base64 >"$W/big"
    (cat "$W/big"; while [ ! -e "$W/go" ]; do sleep 0.02; done; cat "$W/big") 2>/dev/null | xz -1 -T1 -c >"$W/out.xz" 2>"$W/xz.err" &
    PID=$!
    for _ in $(seq 1 500); do [ "$(awk '{print $3}' /proc/$PID/stat 2>/dev/null)" = S ] && break; sleep 0.02; done
    refused "$PID" "process $PID (xz) fd 0 is the read end of pipe:[" "whose write end is held outside the dumped processes by process" \
      "--external-pipes"
    untouched "$PID"
    touch "$W/go"
    wait "$PID" || fail "xz failed"
    PID=""
    xz -dc "$W/out.xz" | cmp - <(cat "$W/big" "$W/big") || fail "xz's output is not its input"
    ;;
  external-pipe-accepted)
    # The same with --external-pipes: the user accepts it. The dump notes
    # the pipe and kills xz; the producer then dies of SIGPIPE, so no
    # process holds the pipe any more and the restore must fail cleanly,
    # naming it, with nothing left running.
    head -c 1000000 /dev/urandom | base64 >"$W/big"
    (cat "$W/big"; while [ ! -e "$W/go" ]; do sleep 0.02; done; cat "$W/big") 2>/dev/null | xz -1 -T1 -c >"$W/out.xz" 2>"$W/xz.err" &
    PID=$!
    for _ in $(seq 1 500); do [ "$(awk '{print $3}' /proc/$PID/stat 2>/dev/null)" = S ] && break; sleep 0.02; done
    "$CKPT" dump "$PID" -D "$W/img" --external-pipes >"$W/dump.out" 2>&1 || { cat "$W/dump.out"; fail "dump --external-pipes"; }
    grep -q "note: process $PID (xz) fd 0 is the read end of pipe:\[.*kept as it is" "$W/dump.out" || { cat "$W/dump.out"; fail "no note about the pipe"; }
    # (No `wait` for xz alone: bash waits for the whole pipeline.)
    touch "$W/go"
    wait  # xz (killed) and the producer (SIGPIPE)
    "$CKPT" restore -D "$W/img" >"$W/err" 2>&1 && fail "the restore succeeded without the pipe"
    grep -q "fd 0 is the read end of pipe:\[.*no live process holds that pipe any more" "$W/err" || { cat "$W/err"; fail "the restore error does not name the pipe"; }
    echo "restore: $(cat "$W/err")"
    sleep 0.2
    [ -d "/proc/$PID" ] && [ "$(awk '{print $3}' /proc/$PID/stat)" != Z ] && fail "a process $PID was left behind"
    PID=""
    ;;
  tracer)
    # Another tracer (strace) holds the process: refused before anything
    # else, naming the tracer's PID and command.
    command -v strace >/dev/null || skip "strace not installed"
    "$BIN/zdtm_counter" "$W" </dev/null >/dev/null 2>&1 &
    PID=$!
    wait_exists "$W/ready" 30 || fail "zdtm_counter never became ready"
    strace -p "$PID" -o /dev/null &
    SPID=$!
    for _ in $(seq 1 500); do grep -q "^TracerPid:[[:space:]]*$SPID$" "/proc/$PID/status" && break; sleep 0.02; done
    grep -q "^TracerPid:[[:space:]]*$SPID$" "/proc/$PID/status" || fail "strace did not attach"
    refused "$PID" "process $PID (zdtm_counter) is traced by process $SPID (strace)" "detach the other tracer"
    kill -INT "$SPID"
    wait "$SPID" 2>/dev/null
    untouched "$PID"
    touch "$W/stop"
    wait_exists "$W/result" 30 || fail "no result"
    grep -q '^PASS' "$W/result" || fail "zdtm_counter: $(cat "$W/result")"
    ;;
  tree-pipeline)
    # `producer | xz` dumped whole with --tree from the shell that runs it:
    # the pipe is internal, stored with its bytes, and the restored pipeline
    # produces exactly its input.
    head -c 1000000 /dev/urandom | base64 >"$W/big"
    sh -c '(cat "$1"; while [ ! -e "$2" ]; do sleep 0.02; done; cat "$1") | xz -1 -T1 -c >"$3"' sh \
      "$W/big" "$W/go" "$W/out.xz" </dev/null >/dev/null 2>"$W/sh.err" &
    PID=$!
    sleep 0.5
    "$CKPT" dump "$PID" --tree -D "$W/img" >"$W/dump.out" 2>&1 || { cat "$W/dump.out"; fail "dump --tree"; }
    wait "$PID" 2>/dev/null
    PID=""
    restore
    touch "$W/go"
    wait "$RJOB" || { cat "$W/restore.err" "$W/sh.err"; fail "the restored pipeline failed"; }
    RJOB=""
    xz -dc "$W/out.xz" | cmp - <(cat "$W/big" "$W/big") || fail "the restored pipeline's output is not its input"
    ;;
  widowed-pipe)
    # A reader whose writer has exited (`seq | python3`, seq done): no
    # process outside holds the pipe. Dumped with the bytes still in the
    # pipe, restored with the write end closed: the reader reads them all
    # and then sees end-of-file. (Before, the restore looked for a live
    # holder of the pipe and failed.)
    seq 1 10000 | python3 -c '
import sys, time
n = s = 0
for line in sys.stdin:
    n += 1
    s += int(line)
    if n % 100 == 0:
        time.sleep(0.02)
print(n, s)' >"$W/out" 2>&1 &
    PID=$!
    # Under load the pipeline's subshell may not have become python3 yet.
    for _ in $(seq 100); do [ "$(cat /proc/$PID/comm 2>/dev/null)" = python3 ] && break; sleep 0.1; done
    sleep 0.5
    "$CKPT" dump "$PID" -D "$W/img" >"$W/dump.out" 2>&1 || { cat "$W/dump.out"; fail "dump"; }
    wait "$PID" 2>/dev/null
    PID=""
    restore
    wait "$RJOB" || { cat "$W/restore.err"; fail "the restored reader failed"; }
    RJOB=""
    [ "$(cat "$W/out")" = "10000 50005000" ] || fail "the reader printed: $(cat "$W/out")"
    ;;
  *) fail "unknown case" ;;
esac
echo "PASS ($CASE)"
