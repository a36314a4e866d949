#!/bin/bash
# The engine's hooks for migration (docs/engine.md, "Hooks for migration"),
# driven by handoff_driver: a dump into a stream whose handoff says no, yes,
# or is interrupted; a restore whose hold says yes, no, or never answers
# because its process is killed.
#   run_handoff.sh CKPT BIN CASE
# CASE: dump-abort | dump-abort-tree | dump-abort-leave-running | dump-commit |
#       dump-interrupted | dump-worker-killed | restore-commit | restore-abort |
#       restore-killed-sysv | restore-killed-posix-shm
set -u
. "$(dirname "$0")/lib.sh"
CKPT=$1 BIN=$2 CASE=$3
DRIVER=$BIN/handoff_driver
W=$(mktemp -d /tmp/ckpt-handoff.XXXXXX)
PID="" DJOB=""
cleanup() {
  [ -n "$DJOB" ] && kill -9 "$DJOB" 2>/dev/null
  [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null
  # Every process of the test has the work directory in its arguments.
  pkill -9 -f -- "$W" 2>/dev/null
  for k in $(cat "$W/ipc_keys" 2>/dev/null); do
    ipcrm -M "$k" 2>/dev/null; ipcrm -S "$k" 2>/dev/null; ipcrm -Q "$k" 2>/dev/null
  done
  for f in $(cat "$W/shm_files" 2>/dev/null); do rm -f "/dev/shm/$f"; done
  wait 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
fail() { echo "FAIL ($CASE): $*"; [ -f "$W/result" ] && cat "$W/result"; exit 1; }
close_inherited_fds
mkdir "$W/img"

# Each of PIDS... runs: alive, not stopped, not traced.
running() {
  local p
  for p in "$@"; do
    case "$(state "$p")" in R|S|D) ;; *) fail "process $p is in state '$(state "$p")', not running" ;; esac
    grep -q '^TracerPid:[[:space:]]*0$' "/proc/$p/status" || fail "process $p is still traced"
  done
}
gone() {  # PID: nothing runs under it (a zombie waiting for init is fine)
  for _ in $(seq 1 500); do
    { [ ! -d "/proc/$1" ] || [ "$(state "$1")" = Z ]; } && return 0
    sleep 0.02
  done
  fail "process $1 ($(cat /proc/$1/comm 2>/dev/null), state $(state "$1")) is still there"
}
# The program stops, checks its own data (sequence numbers: no gap, no
# repeat) and must report PASS.
finish() {
  touch "$W/stop"
  wait_for "$W/result" 120 || fail "no result"
  grep -q '^PASS' "$W/result" || fail "the program's own check failed"
  wait "$PID" 2>/dev/null
  PID=""
}
log_grows() {
  local n
  n=$(wc -l <"$W/log")
  for _ in $(seq 1 500); do [ "$(wc -l <"$W/log")" -gt "$n" ] && return 0; sleep 0.02; done
  fail "the log does not grow"
}
# Runs the driver (ARGS...), expecting exit status WANT and TEXT in its output.
drive() {  # WANT TEXT ARGS...
  local want=$1 text=$2
  shift 2
  "$DRIVER" "$@" >"$W/driver.out" 2>&1
  local rc=$?
  cat "$W/driver.out"
  [ "$rc" = "$want" ] || fail "handoff_driver $* exited with $rc, expected $want"
  grep -qi -- "$text" "$W/driver.out" || fail "the driver's output lacks '$text'"
}
# The handoff ran with every member frozen: stopped by ckpt, the log still.
frozen_in_handoff() {
  grep -q '^HANDOFF state=t log_grew=0' "$W/driver.out" || fail "the members were not frozen during the handoff"
}
# Starts the driver in the background (ARGS...) and waits for LINE in its output.
drive_bg() {  # LINE ARGS...
  local line=$1
  shift
  "$DRIVER" "$@" >"$W/driver.out" 2>&1 &
  DJOB=$!
  for _ in $(seq 1 1500); do
    grep -q "^$line" "$W/driver.out" && return 0
    kill -0 "$DJOB" 2>/dev/null || { cat "$W/driver.out"; fail "the driver ended before '$line'"; }
    sleep 0.02
  done
  fail "the driver never printed '$line'"
}
# Waits (at most 60 s) for the background driver to end; sets RC.
wait_driver() {
  local s
  for _ in $(seq 1 3000); do
    s=$(state "$DJOB")
    [ -z "$s" ] || [ "$s" = Z ] && break
    sleep 0.02
  done
  s=$(state "$DJOB")
  [ -z "$s" ] || [ "$s" = Z ] || { cat "$W/driver.out"; fail "the driver did not end"; }
  wait "$DJOB"
  RC=$?
  DJOB=""
  cat "$W/driver.out"
}
ipc_left() { ipcs -m -s 2>/dev/null | grep -ci "$(printf "0x%08x" "$(head -1 "$W/ipc_keys")")"; }

case $CASE in
  dump-abort)
    # The handoff says no: the same process runs on where it was.
    start zdtm_counter
    drive 1 "the target said no" dump "$PID" "$W/img/process.ckpt" abort
    frozen_in_handoff
    grep -q "the process runs on" "$W/driver.out" || fail "the error does not say the process runs on"
    running "$PID"
    log_grows
    finish
    ;;
  dump-abort-tree | dump-abort-leave-running)
    # A tree with System V IPC (SEM_UNDO adjustments taken and given back):
    # every member runs on, the producer/consumer sequence has no gap.
    start zdtm_sysv_pc
    pids=$(tree_pids "$PID")
    [ "$(echo "$pids" | wc -w)" -ge 2 ] || fail "the tree has one process"
    extra=""
    [ "$CASE" = dump-abort-leave-running ] && extra=--leave-running
    drive 1 "the target said no" dump "$PID" "$W/img/process.ckpt" abort --tree $extra
    grep -q '^HANDOFF state=t' "$W/driver.out" || fail "the members were not frozen during the handoff"
    grep -q "the processes run on" "$W/driver.out" || fail "the error does not say the processes run on"
    # shellcheck disable=SC2086
    running $pids
    [ "$(tree_pids "$PID" | sort)" = "$(echo "$pids" | sort)" ] || fail "the tree changed"
    sleep 0.3
    finish
    ;;
  dump-commit)
    # The handoff says yes: the process ends, the stream holds a complete
    # image that restores and goes on exactly where it was.
    start zdtm_counter
    drive 0 "^OK image_bytes=" dump "$PID" "$W/img/process.ckpt" commit
    frozen_in_handoff
    grep -q "image_path='' " "$W/driver.out" || fail "a stream dump reported an image path"
    bytes=$(sed -n 's/^OK image_bytes=\([0-9]*\).*/\1/p' "$W/driver.out")
    [ "$bytes" = "$(stat -c %s "$W/img/process.ckpt")" ] || fail "image_bytes $bytes is not the stream's size"
    grep -q "handoff_ns=[1-9]" "$W/driver.out" || fail "no handoff time reported"
    gone "$PID"
    wait "$PID" 2>/dev/null
    "$CKPT" verify "$W/img/process.ckpt" || fail "ckpt verify of the streamed image"
    "$CKPT" restore -D "$W/img" --json >"$W/restore.json" 2>"$W/restore.err" &
    RJOB=$!
    wait_restored
    [ "$RPID" = "$PID" ] || fail "restored as $RPID, not $PID"
    log_grows
    finish
    wait "$RJOB" || fail "the restored process exited with an error"
    ;;
  dump-interrupted)
    # SIGINT to the dumping process while the handoff waits: the handoff
    # sees it (DumpInterruptFd), the dump is undone, the process runs on.
    start zdtm_counter
    drive_bg HANDOFF dump "$PID" "$W/img/process.ckpt" hang
    kill -INT "$DJOB"
    wait_driver
    frozen_in_handoff
    [ "$RC" = 1 ] || fail "the interrupted driver exited with $RC"
    grep -q "interrupted by SIGINT before the handoff was complete" "$W/driver.out" || fail "no interruption error"
    grep -q "the handoff saw the interruption" "$W/driver.out" || fail "the handoff's error is not reported"
    running "$PID"
    log_grows
    finish
    ;;
  dump-worker-killed)
    # The dump's worker dies (SIGKILL) during the handoff: the process the
    # driver started it from puts everything back, the process runs on.
    start zdtm_counter
    drive_bg HANDOFF dump "$PID" "$W/img/process.ckpt" hang
    worker=$(pgrep -P "$DJOB")
    [ -n "$worker" ] || fail "no worker process"
    kill -9 "$worker"
    wait_driver
    frozen_in_handoff
    [ "$RC" = 1 ] || fail "the driver exited with $RC"
    grep -q "worker process $worker of this dump was killed" "$W/driver.out" || fail "no repair message"
    running "$PID"
    log_grows
    finish
    ;;
  restore-commit)
    # The hold says yes: the process runs, its sequence goes on.
    start zdtm_counter
    "$CKPT" dump "$PID" -D "$W/img" >/dev/null || fail "dump"
    wait "$PID" 2>/dev/null
    drive 0 "^OK pid=$PID" restore "$W/img/process.ckpt" commit
    grep -q "^HOLD pid=$PID state=t" "$W/driver.out" || fail "the process ran before the hold said yes"
    running "$PID"
    log_grows
    finish
    ;;
  restore-abort)
    # The hold says no: nothing of the tree runs, its System V objects are gone.
    start zdtm_sysv_pc
    pids=$(tree_pids "$PID")
    "$CKPT" dump "$PID" -D "$W/img" --tree >/dev/null || fail "dump"
    wait "$PID" 2>/dev/null
    [ "$(ipc_left)" = 0 ] || fail "the dump left the System V objects"
    drive 1 "the source said no" restore "$W/img/process.ckpt" abort
    grep -q "^HOLD pid=$PID state=t" "$W/driver.out" || fail "the process ran before the hold"
    for p in $pids; do gone "$p"; done
    [ "$(ipc_left)" = 0 ] || { ipcs -m -s; fail "System V objects were left behind"; }
    PID=""
    ;;
  restore-killed-sysv | restore-killed-posix-shm)
    # The process running the restore is killed (SIGKILL) while its hold
    # waits: nothing restored runs, the objects the restore created are gone.
    prog=zdtm_sysv_pc
    [ "$CASE" = restore-killed-posix-shm ] && prog=zdtm_posix_shm
    start $prog
    "$CKPT" dump "$PID" -D "$W/img" --tree >/dev/null || fail "dump"
    wait "$PID" 2>/dev/null
    files=""
    if [ "$prog" = zdtm_posix_shm ]; then
      # The dump leaves /dev/shm files in place: removed, the restore creates them.
      for f in $(cat "$W/shm_files"); do [ -e "/dev/shm/$f" ] && files="$files $f" && rm -f "/dev/shm/$f"; done
      [ -n "$files" ] || fail "no /dev/shm file"
    fi
    drive_bg HOLD restore "$W/img/process.ckpt" hang
    grep -q "^HOLD pid=$PID state=t" "$W/driver.out" || { cat "$W/driver.out"; fail "the process ran before the hold"; }
    pids=$(tree_pids "$PID")
    [ "$(echo "$pids" | wc -w)" -ge 2 ] || fail "the restored tree has one process"
    # What the restore created exists now (else the check below proves nothing).
    if [ "$prog" = zdtm_sysv_pc ]; then
      [ "$(ipc_left)" != 0 ] || fail "the restore created no System V object"
    fi
    for f in $files; do [ -e "/dev/shm/$f" ] || fail "the restore did not create /dev/shm/$f"; done
    kill -9 "$DJOB"
    wait "$DJOB" 2>/dev/null
    DJOB=""
    for p in $pids; do gone "$p"; done
    if [ "$prog" = zdtm_sysv_pc ]; then
      for _ in $(seq 1 250); do [ "$(ipc_left)" = 0 ] && break; sleep 0.02; done
      [ "$(ipc_left)" = 0 ] || { ipcs -m -s; fail "System V objects were left behind"; }
    fi
    for f in $files; do
      for _ in $(seq 1 250); do [ -e "/dev/shm/$f" ] || break; sleep 0.02; done
      [ -e "/dev/shm/$f" ] && fail "/dev/shm/$f was left behind"
    done
    PID=""
    ;;
  *) fail "unknown case" ;;
esac
echo "PASS ($CASE)"
exit 0
