#!/bin/bash
# A refused dump must not stall its target: every refusal that /proc can
# decide is made before any thread is stopped (issue 10, point 11; before,
# a refused dump froze its target for ~0.3 s per process first).
# zdtm_gaps sleeps 1 ms in a loop and logs every gap between two wake-ups
# longer than 2 ms. The test measures the longest gap the loop sees in a
# 1 s window without any dump (the machine's own noise, printed for
# comparison) and, for each of five refused dumps, the longest gap while it
# runs. The issue asks for < 10 ms; on the shared 2-core test VM the loop
# alone sees 2-10 ms gaps and, under load, now and then 40 ms. So the test
# requires the median of the five per-dump figures to stay below BOUND_MS
# = 30 ms: a dump that stops its target stalls it every time (~300 ms per
# process before this check existed), while one noisy moment does not move
# the median.
#   run_stall.sh CKPT BINDIR CASE
# CASE: socket | timer | flock | pipe | bpf-filter | md5 (one process; the
#       resource it holds)
#       | tree-socket (a tree of two, dumped with --tree; the child holds it)
set -u
. "$(dirname "$0")/lib.sh"
CKPT=$1 BIN=$2 CASE=$3
BOUND_MS=${BOUND_MS:-30}
W=$(mktemp -d /tmp/ckpt-stall.XXXXXX)
PID=""
cleanup() {
  touch "$W/stop"
  pkill -9 -f -- "$W" 2>/dev/null  # every process of the test has $W in its arguments
  wait 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
fail() { echo "FAIL ($CASE): $*"; exit 1; }
close_inherited_fds
G=$BIN/zdtm_gaps
now() { "$G" --now; }

TREE=() EXPECT=""
case $CASE in
  socket) "$G" "$W" --socket </dev/null >/dev/null 2>&1 & EXPECT="with connections waiting to be accepted" ;;
  timer) "$G" "$W" --timer </dev/null >/dev/null 2>&1 & EXPECT="POSIX timer" ;;
  bpf-filter) "$G" "$W" --bpf-filter </dev/null >/dev/null 2>&1 & EXPECT="eBPF socket filter" ;;
  md5) "$G" "$W" --md5 </dev/null >/dev/null 2>&1 & EXPECT="TCP MD5 signature keys" ;;
  flock) flock "$W/lock" "$G" "$W" </dev/null >/dev/null 2>&1 & EXPECT="flock() exclusive lock" ;;
  pipe) "$G" "$W" </dev/null 2>&1 | cat >/dev/null & EXPECT="pipe:" ;;
  tree-socket) "$G" "$W" --fork --socket </dev/null >/dev/null 2>&1 & TREE=(--tree); EXPECT="with connections waiting to be accepted" ;;
  *) fail "unknown case" ;;
esac
wait_for "$W/ready" 60 || fail "zdtm_gaps never became ready"
PID=$(cat "$W/pid")

# The longest gap (ms) any loop saw that overlaps [FROM, TO] (ns).
max_gap() {
  cat "$W"/gaps.* | awk -v a="$1" -v b="$2" '$1 - $2 < b && $1 > a && $2 > m { m = $2 } END { printf "%.1f\n", m / 1e6 }'
}

t0=$(now)
sleep 1
t1=$(now)
base=$(max_gap "$t0" "$t1")

per_dump=()
t2=$(now)
for i in 1 2 3 4 5; do
  ta=$(now)
  "$CKPT" dump "$PID" "${TREE[@]}" -D "$W/img" >"$W/err" 2>&1
  rc=$?
  tb=$(now)
  per_dump+=("$ta $tb")
  [ "$rc" = 1 ] || { cat "$W/err"; fail "dump $i exited with $rc, expected a refusal (1)"; }
  grep -qF -- "$EXPECT" "$W/err" || { cat "$W/err"; fail "the refusal does not name '$EXPECT'"; }
  grep -q "Nothing was stopped" "$W/err" || touch "$W/stopped_first"
done
t3=$(now)
during=$(max_gap "$t2" "$t3")
gaps=()
for w in "${per_dump[@]}"; do gaps+=("$(max_gap $w)"); done
median=$(printf '%s\n' "${gaps[@]}" | sort -n | sed -n 3p)
[ -e "$W/img/process.ckpt" ] && fail "an image was written"
for p in $PID $(cat "$W/child" 2>/dev/null); do
  grep -q "^TracerPid:[[:space:]]*0$" "/proc/$p/status" || fail "process $p is still traced"
  state=$(awk '{print $3}' "/proc/$p/stat")
  [ "$state" = S ] || [ "$state" = R ] || fail "process $p is left in state $state"
done
echo "$(head -c 400 "$W/err")"
echo "longest gap of the 1 ms loop: ${base} ms in 1 s without a dump; during each of 5 refused dumps:" \
  "${gaps[*]} ms (0 = no gap over 2 ms; median ${median} ms, bound ${BOUND_MS} ms; longest over all $(( (t3 - t2) / 1000000 )) ms: ${during} ms)"
awk -v d="$median" -v b="$BOUND_MS" 'BEGIN { exit !(d < b) }' || fail "a refused dump stalled the process ${median} ms"
[ -e "$W/stopped_first" ] && fail "the refusal says it came after stopping the process"
touch "$W/stop"
wait_for "$W/result" 30 || fail "no result"
grep -q '^PASS' "$W/result" || fail "the process failed: $(cat "$W/result")"
echo "PASS ($CASE)"
