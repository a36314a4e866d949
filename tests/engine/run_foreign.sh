#!/bin/bash
# Dumps and restores a program nobody here wrote (python3, perl, bash,
# sqlite3, node, tail -f, python3's asyncio and multiprocessing.Pipe),
# unmodified, and checks from its continued output that it went on
# exactly where it stopped.   run_foreign.sh CKPT python3|perl|bash|sqlite3|node|tail|asyncio|mp-pipe
set -u
. "$(dirname "$0")/lib.sh"
CKPT=$1 KIND=$2
W=$(mktemp -d /tmp/ckpt-foreign.XXXXXX)
PID="" RJOB="" FEED=""
cleanup() {
  [ -n "$PID" ] && { pkill -9 -P "$PID" 2>/dev/null; kill -9 "$PID" 2>/dev/null; }
  [ -n "$FEED" ] && kill -9 "$FEED" 2>/dev/null
  { [ -n "$RJOB" ] && wait "$RJOB"; wait; } 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
fail() { echo "FAIL ($KIND): $*"; exit 1; }
lines() { wc -l <"$W/out"; }
wait_lines() {  # N: until the output has at least N lines
  for _ in $(seq 1 1500); do [ "$(lines)" -ge "$1" ] && return 0; sleep 0.02; done
  fail "output stuck at $(lines) lines, wanted $1"
}
close_inherited_fds
PROG=$KIND
case $KIND in asyncio | mp-pipe) PROG=python3 ;; esac
command -v "$PROG" >/dev/null || { echo "SKIP: $PROG not installed"; exit 77; }

case $KIND in
  python3)
    python3 -c '
import time
i, s = 0, 0
while True:
    s += i * i
    print(i, s, flush=True)
    i += 1
    time.sleep(0.005)' </dev/null >"$W/out" 2>"$W/err" &
    PID=$! ;;
  perl)
    perl -e '$| = 1; for (my ($i, $s) = (0, 0);; $i++) { $s += $i * $i; print "$i $s\n"; select(undef, undef, undef, 0.005) }' \
      </dev/null >"$W/out" 2>"$W/err" &
    PID=$! ;;
  tail)
    # tail -f (coreutils) following a file a shell outside appends to: it
    # waits on inotify. Its output must go on with every line, in order.
    ( i=0 s=0
      while [ ! -e "$W/done" ]; do
        s=$((s + i * i)); echo "$i $s" >>"$W/in"; i=$((i + 1)); sleep 0.005
      done ) &
    FEED=$!
    while [ ! -s "$W/in" ]; do sleep 0.01; done
    tail -n +1 -f "$W/in" </dev/null >"$W/out" 2>"$W/err" &
    PID=$! ;;
  asyncio)
    # python3's asyncio loop: epoll, and a socket pair it wakes itself with.
    python3 -c '
import asyncio
async def main():
    i, s = 0, 0
    while True:
        s += i * i
        print(i, s, flush=True)
        i += 1
        await asyncio.sleep(0.005)
asyncio.run(main())' </dev/null >"$W/out" 2>"$W/err" &
    PID=$! ;;
  mp-pipe)
    # multiprocessing.Pipe() (duplex: a Unix socket pair) between python3
    # and its forked child, which squares what it gets; dumped with --tree.
    python3 -c '
import multiprocessing as mp, time
def square(c):
    while True:
        c.send(c.recv() ** 2)
if __name__ == "__main__":
    mp.set_start_method("fork")
    a, b = mp.Pipe()
    mp.Process(target=square, args=(b,), daemon=True).start()
    i, s = 0, 0
    while True:
        a.send(i)
        s += a.recv()
        print(i, s, flush=True)
        i += 1
        time.sleep(0.005)' </dev/null >"$W/out" 2>"$W/err" &
    PID=$! ;;
  node)
    # libuv's event loop: epoll, eventfds, pipes and worker threads.
    node -e '
let i = 0, s = 0;
setInterval(() => { s += i * i; process.stdout.write(i + " " + s + "\n"); i++; }, 5);' \
      </dev/null >"$W/out" 2>"$W/err" &
    PID=$! ;;
  bash)
    bash -c 'i=0 s=0; while :; do s=$((s + i * i)); if ((i % 200 == 0)); then echo "$i $s"; fi; i=$((i + 1)); done' \
      </dev/null >"$W/out" 2>"$W/err" &
    PID=$! ;;
  sqlite3)
    # A feeder writes SQL into an anonymous pipe; it pauses while the dump
    # and restore happen (else its writes would meet a pipe without reader).
    # The feeder is outside the dump: without --external-pipes the dump is
    # refused (run_refusals.sh), with it the restore reattaches sqlite3 to
    # the very pipe the feeder still holds.
    # stdbuf only makes its stdout line-buffered (it is not a terminal).
    ( i=0
      echo "CREATE TABLE t(v INTEGER);"
      while :; do
        while [ -e "$W/pause" ]; do sleep 0.01; done
        i=$((i + 1))
        echo "INSERT INTO t VALUES($i);"
        echo "SELECT count(*), sum(v * v) FROM t;"
        echo "$i" >"$W/fed"
        sleep 0.005
      done ) | stdbuf -oL sqlite3 >"$W/out" 2>"$W/err" &
    PID=$!
    FEED=$(jobs -p | head -1) ;;
  *) fail "unknown program" ;;
esac
wait_lines 20
for round in 1 2; do
  [ "$KIND" = sqlite3 ] && { touch "$W/pause"; sleep 0.1; }
  DOPT=()
  [ "$KIND" = sqlite3 ] && DOPT=(--external-pipes)
  [ "$KIND" = mp-pipe ] && DOPT=(--tree)
  if [ "$KIND" = tail ]; then
    grep -q "inotify wd:" /proc/$PID/fdinfo/* 2>/dev/null || fail "tail -f does not use inotify here"
  fi
  "$CKPT" dump "$PID" -D "$W/img" "${DOPT[@]}" >"$W/dump.out" 2>&1 || { cat "$W/dump.out"; fail "dump $round"; }
  if [ -n "$RJOB" ]; then
    wait "$RJOB" 2>/dev/null
  elif [ "$KIND" != sqlite3 ]; then  # (a pipeline member: `wait` would wait for the feeder too)
    wait "$PID" 2>/dev/null
  fi
  before=$(lines)
  # (Removed first: the backgrounded redirection truncates it only when the
  # job starts, and the loop below must not read the previous round's.)
  rm -f "$W/restore.json"
  "$CKPT" restore -D "$W/img" --json >"$W/restore.json" 2>"$W/restore.err" &
  RJOB=$!
  for _ in $(seq 1 1500); do grep -q '"pid"' "$W/restore.json" 2>/dev/null && break; sleep 0.02; done
  grep -q '"pid"' "$W/restore.json" || { cat "$W/restore.err"; fail "restore $round"; }
  rm -f "$W/pause"
  wait_lines $((before + 20))
done
# (mp-pipe's child holds both ends of its pipe: it would wait forever.)
pkill -9 -P "$PID" 2>/dev/null
kill -9 "$PID"; { wait "$RJOB"; } 2>/dev/null; RJOB="" PID=""
touch "$W/done"
# The kill may cut the last line in two: with PYTHONUNBUFFERED (set on some
# machines) python3's print writes "75", " ", "143450" and "\n" in four
# calls. Only whole lines are checked. (Found by the dump below: before, an
# intermittent "line N: s=, expected ..." had no explanation.)
if [ -n "$(tail -c 1 "$W/out")" ]; then sed -i '$d' "$W/out"; fi

# Every line must follow from the one before: i counts up by one (by 200 for
# bash), s is the sum of squares so far.
res=$(awk -v kind="$KIND" '
  kind == "sqlite3" { split($0, f, "|"); n = f[1]; s = f[2]
    if (n != NR || s != n * (n + 1) * (2 * n + 1) / 6) { print "bad line " NR ": " $0; bad = 1; exit 1 } next }
  { step = (kind == "bash") ? 200 : 1; i = (NR - 1) * step
    if ($1 != i) { print "line " NR ": i=" $1 ", expected " i; bad = 1; exit 1 }
    want = (i - 1) * i * (2 * i - 1) / 6 + i * i
    if (kind == "bash") { }  # bash sums every i, checked below
    else if ($2 != want) { print "line " NR ": s=" $2 ", expected " want; bad = 1; exit 1 } }
  END { if (!bad) print "ok " NR " lines" }' "$W/out")
rc=$?
echo "$res"
if [ $rc -ne 0 ]; then
  # What the bad line really holds (an intermittent failure once showed an
  # empty second field): the bytes around it, and the dump and restore
  # messages.
  n=$(echo "$res" | sed -n 's/^\(bad \)\{0,1\}line \([0-9]*\):.*/\2/p' | head -1)
  echo "--- lines $((n - 2))..$((n + 2)) of $(awk 'END { print NR }' "$W/out"), bytes shown (cat -A):"
  sed -n "$((n > 2 ? n - 2 : 1)),$((n + 2))p" "$W/out" | cat -A | cut -c1-200
  echo "--- dump and restore messages:"; cat "$W/dump.out" "$W/restore.err" 2>/dev/null | tail -n 6
  fail "output is not continuous"
fi
if [ "$KIND" = bash ]; then
  tail -1 "$W/out" | awk '{ i = $1; want = (i - 1) * i * (2 * i - 1) / 6 + i * i; if ($2 != want) { print "bash sum wrong"; exit 1 } }' \
    || fail "bash arithmetic state lost"
fi
echo "PASS ($KIND: $(lines) lines, two dump/restore rounds)"
