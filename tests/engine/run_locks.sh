#!/bin/bash
# File locks across a dump and restore (issue 12): they are held again before
# the restored process runs, and a lock another process took in between is a
# restore error that leaves nothing running.
#   run_locks.sh CKPT CASE
# CASE: held | taken-meanwhile | sqlite-wal
set -u
. "$(dirname "$0")/lib.sh"
CKPT=$1 CASE=$2
W=$(mktemp -d /tmp/ckpt-locks.XXXXXX)
PID="" RJOB="" FEED="" READER=""
cleanup() {
  touch "$W/stop" "$W/done"
  [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null
  for p in $FEED $READER; do kill -9 "$p" 2>/dev/null; done
  pkill -9 -f -- "$W" 2>/dev/null
  { [ -n "$RJOB" ] && wait "$RJOB"; wait; } 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
fail() { echo "FAIL ($CASE): $*"; exit 1; }
skip() { echo "SKIP ($CASE): $*"; exit 77; }
close_inherited_fds


# A python3 process holding three kinds of lock, each on its own file: an
# OFD write lock on bytes 0-99 of "ofd", an flock() exclusive lock on
# "flock", a POSIX read lock on bytes 10-19 of "posix" (through its own
# open file description: a second descriptor of the same file stays open).
# After each restore it writes ready.N with N counting its rounds.
cat >"$W/locks.py" <<'PY'
import fcntl, os, struct, sys, time
d = sys.argv[1]
ofd = open(d + "/ofd", "w")
fcntl.fcntl(ofd, 37, struct.pack("hhqqi4x", fcntl.F_WRLCK, 0, 0, 100, 0))  # F_OFD_SETLK
fl = open(d + "/flock", "w")
fcntl.flock(fl, fcntl.LOCK_EX)
px = open(d + "/posix", "r+")
other = open(d + "/posix", "r")
fcntl.lockf(px, fcntl.LOCK_SH, 10, 10)
n = 0
open(d + "/ready", "w").close()
while not os.path.exists(d + "/stop"):
    n += 1
    with open(d + "/beat.tmp", "w") as f:
        f.write(str(n))
    os.rename(d + "/beat.tmp", d + "/beat")
    time.sleep(0.01)
PY
# Can another process take each lock now? Prints "ofd flock posix" for each
# one it could (none while the python3 process holds them).
cat >"$W/probe.py" <<'PY'
import fcntl, struct, sys
d = sys.argv[1]
free = []
f = open(d + "/ofd", "w")
try:
    fcntl.fcntl(f, 37, struct.pack("hhqqi4x", fcntl.F_WRLCK, 0, 50, 1, 0))
    free.append("ofd")
except OSError:
    pass
try:
    fcntl.flock(open(d + "/flock", "w"), fcntl.LOCK_EX | fcntl.LOCK_NB)
    free.append("flock")
except OSError:
    pass
try:
    fcntl.fcntl(open(d + "/posix", "r+"), 37, struct.pack("hhqqi4x", fcntl.F_WRLCK, 0, 15, 1, 0))
    free.append("posix")
except OSError:
    pass
print(" ".join(free))
PY
start_locks() {
  printf 'x%.0s' $(seq 1 200) >"$W/posix"
  python3 "$W/locks.py" "$W" </dev/null >/dev/null 2>"$W/py.err" &
  PID=$!
  wait_exists "$W/ready" 30 || fail "python3 never became ready: $(cat "$W/py.err")"
  [ -z "$(python3 "$W/probe.py" "$W")" ] || fail "the test is wrong: a lock is free before the dump"
}
beats() { cat "$W/beat" 2>/dev/null || echo 0; }
goes_on() {  # the restored process beats again
  local b
  b=$(beats)
  for _ in $(seq 1 250); do [ "$(beats)" -gt "$b" ] && return 0; sleep 0.02; done
  fail "the restored process does not run"
}

case $CASE in
  held)
    # Dumped and restored twice; after each restore another process finds
    # every lock taken, and the process runs on.
    start_locks
    for round in 1 2; do
      "$CKPT" dump "$PID" -D "$W/img" >"$W/dump.out" 2>&1 || { cat "$W/dump.out"; fail "dump $round"; }
      [ -n "$RJOB" ] && wait "$RJOB" 2>/dev/null
      free=$(python3 "$W/probe.py" "$W")
      [ "$free" = "ofd flock posix" ] || fail "round $round: with the process dumped, free locks are '$free'"
      restore
      PID=$RPID
      free=$(python3 "$W/probe.py" "$W")
      [ -z "$free" ] || fail "round $round: after the restore, these locks are free: $free"
      grep -q "lock:" "/proc/$PID/fdinfo/3" || fail "round $round: fd 3 shows no lock"
      goes_on
    done
    echo "PASS (held: OFD, flock and POSIX locks held again after two restores)"
    ;;
  taken-meanwhile)
    # After the dump another process takes the flock: the restore fails,
    # names the lock, and leaves nothing running; once it is released the
    # same image restores with every lock.
    start_locks
    "$CKPT" dump "$PID" -D "$W/img" >"$W/dump.out" 2>&1 || { cat "$W/dump.out"; fail "dump"; }
    wait "$PID" 2>/dev/null
    flock "$W/flock" sh -c "touch $W/taken; while [ ! -e $W/done ]; do sleep 0.02; done" &
    wait_exists "$W/taken" 30 || fail "flock(1) did not take the lock"
    "$CKPT" restore -D "$W/img" >"$W/restore.out" 2>&1
    rc=$?
    [ "$rc" != 0 ] || fail "the restore succeeded while another process held the lock"
    grep -q "cannot take back an flock() exclusive lock on fd" "$W/restore.out" ||
      { cat "$W/restore.out"; fail "the error does not name the lock"; }
    grep -q "another process holds a conflicting lock" "$W/restore.out" ||
      { cat "$W/restore.out"; fail "the error does not say why"; }
    kill -0 "$PID" 2>/dev/null && fail "a process with the image's PID runs after the failed restore"
    echo "refused: $(cat "$W/restore.out")"
    touch "$W/done"
    wait
    restore
    PID=$RPID
    [ -z "$(python3 "$W/probe.py" "$W")" ] || fail "a lock is free after the second restore"
    goes_on
    echo "PASS (taken-meanwhile)"
    ;;
  sqlite-wal)
    # sqlite3 in WAL mode fed through a pipe by a shell outside the dump
    # (--external-pipes), while another sqlite3 outside reads the database
    # every few milliseconds. sqlite3 holds POSIX read locks on the
    # database and its -shm file; had the restore dropped them, the reader
    # would checkpoint and delete the WAL under the writer and committed
    # rows would be lost. Three rounds; every fed row must be there.
    # Between a dump and its restore nobody holds the writer's locks: the
    # reader, then the last connection, would checkpoint and remove the
    # WAL (losing nothing, but the restore would fail: the file is gone).
    # So the reader pauses from the dump to the restore, as a client of a
    # migrated database waits while it moves.
    command -v sqlite3 >/dev/null || skip "sqlite3 not installed"
    sqlite3 "$W/db" "PRAGMA journal_mode=WAL; CREATE TABLE t(v INTEGER);" >/dev/null
    ( i=0
      while [ ! -e "$W/done" ]; do
        while [ -e "$W/pause" ]; do sleep 0.01; done
        i=$((i + 1))
        echo "INSERT INTO t VALUES($i);"
        echo "$i" >"$W/fed"
        sleep 0.002
      done ) | sqlite3 "$W/db" >"$W/out" 2>"$W/err" &
    PID=$!
    FEED=$(jobs -p | head -1)
    ( while [ ! -e "$W/done" ]; do
        if [ -e "$W/hold-reader" ]; then touch "$W/reader-held"; sleep 0.01; continue; fi
        rm -f "$W/reader-held"
        sqlite3 "$W/db" "SELECT count(*) FROM t;" >>"$W/reads" 2>>"$W/reads.err"
        sleep 0.005
      done ) &
    READER=$!
    wait_for "$W/fed" 30 || fail "nothing fed"
    for round in 1 2 3; do
      sleep 0.3
      touch "$W/pause" "$W/hold-reader"
      wait_exists "$W/reader-held" 30 || fail "the reader does not pause"
      grep -q "lock:" /proc/$PID/fdinfo/* 2>/dev/null || fail "round $round: sqlite3 holds no lock"
      "$CKPT" dump "$PID" -D "$W/img" --external-pipes >"$W/dump.out" 2>&1 || { cat "$W/dump.out"; fail "dump $round"; }
      [ -n "$RJOB" ] && wait "$RJOB" 2>/dev/null
      restore
      PID=$RPID
      rm -f "$W/hold-reader"
      sleep 0.3  # the reader reads while the writer is paused: its locks must keep the WAL
      rm -f "$W/pause"
    done
    sleep 0.3
    touch "$W/done"
    for _ in $(seq 1 500); do kill -0 "$PID" 2>/dev/null || break; sleep 0.02; done
    kill -0 "$PID" 2>/dev/null && fail "sqlite3 did not end at the end of its input"
    wait "$RJOB" 2>/dev/null
    RJOB="" PID=""
    wait 2>/dev/null
    fed=$(cat "$W/fed")
    got=$(sqlite3 "$W/db" "SELECT count(*) || ' ' || sum(v) FROM t;")
    [ "$got" = "$fed $((fed * (fed + 1) / 2))" ] || fail "fed $fed rows, the database has (count sum) $got"
    [ -s "$W/reads" ] || fail "the reader never read"
    echo "PASS (sqlite-wal: $fed rows, three restores, $(wc -l <"$W/reads") reads meanwhile)"
    ;;
  *) fail "unknown case" ;;
esac
