#!/bin/bash
# A dump must not change the process it dumps: memory that a forked child
# still shares copy-on-write with its parent stays shared through
# `ckpt dump --tree --leave-running` (reading it with process_vm_readv would
# pin it, and the kernel would give each process its own copy).
#   run_cow.sh CKPT
set -u
. "$(dirname "$0")/lib.sh"
CKPT=$1
W=$(mktemp -d /tmp/ckpt-cow.XXXXXX)
PID=""
cleanup() {
  [ -n "$PID" ] && pkill -9 -P "$PID" 2>/dev/null
  [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
# Descriptors the test harness holds open must not leak into the program
# (a pipe to the harness would make the dump refuse it: its other end is
# outside the dumped processes).
close_inherited_fds
command -v python3 >/dev/null || { echo "SKIP: no python3"; exit 77; }
# 64 MiB of random bytes, then fork: parent and child share the pages.
python3 -c '
import os, sys, time
buf = bytearray(os.urandom(64 << 20))
child = os.fork()
if child == 0:
    while True: time.sleep(1)
open(sys.argv[1] + "/child", "w").write(str(child))
while True: time.sleep(1)
' "$W" </dev/null >/dev/null 2>&1 &
PID=$!
for _ in $(seq 1 500); do [ -s "$W/child" ] && break; sleep 0.02; done
CHILD=$(cat "$W/child" 2>/dev/null) || fail "python3 never forked"
kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/smaps_rollup"; }
before=$(kb "$CHILD" Shared_Dirty)
[ "$before" -ge 60000 ] || fail "child shares only ${before} kB before the dump"
"$CKPT" dump "$PID" --tree --leave-running -D "$W/img" --no-sync --json >"$W/out" 2>&1 || fail "dump: $(cat "$W/out")"
grep -q '"members": 2' "$W/out" || fail "the tree was not dumped whole: $(cat "$W/out")"
# Both ways of copying pages must keep the sharing: ckpt reading them
# (default) and the processes writing their own (CKPT_ENGINE_DUMP_COPY=in-place).
want=readv
[ "${CKPT_ENGINE_DUMP_COPY:-}" = in-place ] && want=in-place
grep -q "\"page_copy\": \"$want\"" "$W/out" || fail "pages were not copied $want: $(cat "$W/out")"
grep -q '"phases_ms"' "$W/out" && grep -q '"pages": ' "$W/out" || fail "no phase times in --json: $(cat "$W/out")"
after=$(kb "$CHILD" Shared_Dirty)
priv=$(kb "$CHILD" Private_Dirty)
echo "child: Shared_Dirty ${before} kB -> ${after} kB, Private_Dirty ${priv} kB after the dump"
[ "$after" -ge $((before - 4096)) ] || fail "the dump unshared the child's memory (${before} -> ${after} kB shared)"
"$CKPT" verify "$W/img/process.ckpt" >/dev/null 2>&1 || fail "image does not verify"
echo PASS
