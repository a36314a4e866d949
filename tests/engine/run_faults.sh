#!/bin/bash
# Bad input and faults: each case must end in a clear error (non-zero exit
# and a message naming the problem), keep a previous image intact, and
# leave no half-built process behind.
#   run_faults.sh CKPT BINDIR CASE
# CASE: exit-during-dump | corrupt-image | truncated-image | mapped-file-changed
#       | pid-taken | no-such-process | not-an-image | inspect-json
#       | ipc-taken | tree-restore-fails-late | tree-child-pid-taken | seccomp
set -u
. "$(dirname "$0")/lib.sh"
CKPT=$1 BIN=$2 CASE=$3
W=$(mktemp -d /tmp/ckpt-faults.XXXXXX)
PID=""
cleanup() {
  [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null
  for k in $(cat "$W/ipc_keys" 2>/dev/null); do
    ipcrm -M "$k" 2>/dev/null; ipcrm -S "$k" 2>/dev/null; ipcrm -Q "$k" 2>/dev/null
  done
  wait 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
fail() { echo "FAIL ($CASE): $*"; exit 1; }
close_inherited_fds
expect_error() {  # STATUS TEXT CMD...: the command exits with STATUS and says TEXT
  local want=$1 text=$2
  shift 2
  "$@" >"$W/err.out" 2>&1
  local rc=$?
  [ "$rc" = "$want" ] || { cat "$W/err.out"; fail "'$*' exited with $rc, expected $want"; }
  grep -qi -- "$text" "$W/err.out" || { cat "$W/err.out"; fail "error lacks '$text'"; }
  echo "ok: $(head -c 300 "$W/err.out")"
}
no_process() {  # PID: nothing may run under it after a failed restore
  sleep 0.2
  if [ -d "/proc/$1" ] && [ "$(awk '{print $3}' /proc/$1/stat 2>/dev/null)" != Z ]; then
    fail "a process $1 ($(cat /proc/$1/comm 2>/dev/null)) was left behind"
  fi
}
dump_killed() {  # dumps PID (killing it) into $W/img
  "$CKPT" dump "$PID" -D "$W/img" >/dev/null || fail "dump"
  wait "$PID" 2>/dev/null
}
flip_byte() {  # FILE OFFSET
  python3 -c "
import sys
f = open(sys.argv[1], 'r+b'); f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0x5a]))" "$1" "$2"
}

case $CASE in
  seccomp)
    start zdtm_seccomp
    expect_error 1 "seccomp" "$CKPT" dump "$PID" -D "$W/img"
    [ -e "$W/img/process.ckpt" ] && fail "an image was written"
    sleep 0.1
    kill -0 "$PID" 2>/dev/null || fail "the process did not survive the refused dump"
    grep -q "^TracerPid:[[:space:]]*0$" "/proc/$PID/status" || fail "the process is still traced"
    state=$(awk '{print $3}' "/proc/$PID/stat")
    [ "$state" = S ] || [ "$state" = R ] || fail "the process is left in state $state"
    ;;
  exit-during-dump)
    start zdtm_bigheap 64
    "$CKPT" dump "$PID" -D "$W/img" --leave-running >/dev/null || fail "first dump"
    before=$(sha256sum <"$W/img/process.ckpt")
    CKPT_ENGINE_FAULT=kill-during-dump expect_error 1 "during the dump" "$CKPT" dump "$PID" -D "$W/img"
    [ "$(sha256sum <"$W/img/process.ckpt")" = "$before" ] || fail "the previous image was changed"
    [ -n "$(ls -A "$W/img" | grep -vx process.ckpt)" ] && fail "a temporary image was left behind"
    "$CKPT" inspect "$W/img" >/dev/null || fail "the previous image no longer verifies"
    ;;
  corrupt-image)
    start zdtm_counter
    dump_killed
    size=$(stat -c %s "$W/img/process.ckpt")
    flip_byte "$W/img/process.ckpt" $((size / 2))
    expect_error 3 "checksum" "$CKPT" restore -D "$W/img"
    no_process "$PID"
    ;;
  truncated-image)
    start zdtm_counter
    dump_killed
    size=$(stat -c %s "$W/img/process.ckpt")
    truncate -s $((size * 2 / 3)) "$W/img/process.ckpt"
    expect_error 3 "truncated\|corrupt\|trailer" "$CKPT" restore -D "$W/img"
    no_process "$PID"
    ;;
  mapped-file-changed)
    head -c 65536 /dev/urandom >"$W/mapped.dat"
    start zdtm_files
    dump_killed
    echo more >>"$W/mapped.dat"
    expect_error 3 "mapped.dat changed since the dump" "$CKPT" restore -D "$W/img"
    no_process "$PID"
    ;;
  pid-taken)
    start zdtm_counter
    "$CKPT" dump "$PID" -D "$W/img" --leave-running >/dev/null || fail "dump"
    expect_error 1 "PID $PID is in use" "$CKPT" restore -D "$W/img"
    touch "$W/stop"
    wait_for "$W/result" 60 || fail "the running process was disturbed"
    grep -q PASS "$W/result" || fail "the running process failed: $(cat "$W/result")"
    ;;
  no-such-process)
    expect_error 1 "does not exist" "$CKPT" dump 4000000 -D "$W/img"
    [ -e "$W/img/process.ckpt" ] && fail "an image was written"
    ;;
  not-an-image)
    mkdir -p "$W/img"
    echo "hello" >"$W/img/process.ckpt"
    expect_error 3 "process.ckpt" "$CKPT" restore -D "$W/img"
    ;;
  inspect-json)
    # Not a fault: `ckpt inspect DIR --json` must show threads, the map and fds.
    start zdtm_threads
    "$CKPT" dump "$PID" -D "$W/img" --leave-running >/dev/null || fail "dump"
    "$CKPT" inspect "$W/img" --json >"$W/inspect.json" || fail "inspect"
    python3 - "$W/inspect.json" "$PID" <<'PY' || fail "inspect output is incomplete"
import json, sys
j = json.load(open(sys.argv[1]))
pid = int(sys.argv[2])
assert j["kind"] == "process", j["kind"]
assert j["process"]["pid"] == pid
assert len(j["threads"]) == 5 and j["threads"][0]["tid"] == pid, j["threads"]
heap = [v for v in j["vmas"] if v["kind"] == "heap"]
assert heap and heap[0]["size"] > 0
assert sum(v["stored_bytes"] for v in j["vmas"]) == j["memory"]["stored_bytes"]
assert [f["fd"] for f in j["fds"]][:3] == [0, 1, 2], j["fds"]
assert j["checksums"] == "ok"
PY
    ;;
  ipc-taken)
    # The image's System V keys are taken here: --ipc-ns host (the default)
    # refuses with a clear message and creates nothing.
    start zdtm_sysv_pc
    "$CKPT" dump "$PID" -D "$W/img" --tree >/dev/null || fail "dump"
    wait "$PID" 2>/dev/null
    key=$(head -1 "$W/ipc_keys")
    (cd "$W" && "$(dirname "$0")/occupy_keys.sh")
    expect_error 3 "taken.*--ipc-ns new" "$CKPT" restore -D "$W/img"
    no_process "$PID"
    [ "$(ipcs -s | grep -ci "$(printf '0x%08x' "$key")")" = 0 ] || fail "a semaphore set was created"
    ;;
  tree-restore-fails-late)
    # A restore that fails after every member and object was built leaves
    # nothing: no member runs, no System V object or /dev/shm file remains.
    start zdtm_sysv_pc
    "$CKPT" dump "$PID" -D "$W/img" --tree >/dev/null || fail "dump"
    wait "$PID" 2>/dev/null
    key=$(printf "0x%08x" "$(head -1 "$W/ipc_keys")")
    CKPT_ENGINE_FAULT=fail-restore-late expect_error 1 "last step" "$CKPT" restore -D "$W/img"
    no_process "$PID"
    no_process "$((PID + 1))"
    [ "$(ipcs -m -s | grep -ci "$key")" = 0 ] || { ipcs -m -s; fail "System V objects were left behind"; }
    ;;
  tree-child-pid-taken)
    # The root's PID is free but a child's is taken: a clear error naming
    # it, and nothing of the tree left running.
    start zdtm_tree
    "$CKPT" dump "$PID" -D "$W/img" --tree >/dev/null || fail "dump"
    wait "$PID" 2>/dev/null
    child=$("$CKPT" inspect "$W/img" --json | python3 -c "import json,sys; print(json.load(sys.stdin)['tree']['members'][1]['pid'])")
    sleep 0.2
    # Take the child's PID with a sleeping process (ns_last_pid; retried, as
    # other processes may take it first).
    HOLDER=""
    for _ in 1 2 3 4 5; do
      echo $((child - 1)) >/proc/sys/kernel/ns_last_pid
      sleep 5 &
      if [ $! = "$child" ]; then HOLDER=$!; break; fi
      kill $! 2>/dev/null
    done
    [ -n "$HOLDER" ] || { echo "could not take PID $child; skipped"; echo "PASS ($CASE)"; exit 0; }
    expect_error 3 "PID $child (its child) is in use" "$CKPT" restore -D "$W/img"
    no_process "$PID"
    kill "$HOLDER" 2>/dev/null
    ;;
  *) fail "unknown case" ;;
esac
echo "PASS ($CASE)"
