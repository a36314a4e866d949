#!/bin/bash
# Runs one zdtm-style engine test: starts PROGRAM, waits until it is ready,
# dumps and restores it (several times, or with --leave-running), lets it
# verify its own data and checks that it reported PASS.
#   run_zdtm.sh CKPT PROGRAM [--iterations N] [--leave-running] [--pidns]
#               [--signal SIG] [--restore-env VAR=VALUE] [--setup CMD]
#               [--expect-restore TEXT] [--dump-opt OPT]... [--restore-opt OPT]...
#               [--restore-wrap CMD] [-- ARGS...]
# --before-restore CMD runs CMD (in DIR) before each restore.
# --companion runs a second instance of PROGRAM beside it that is not
# dumped (in DIR/companion): it must go on untouched and pass too.
# --restore-wrap runs the restore under CMD (e.g. a script that restores in
# fresh namespaces: a "second host").
# --stopped stops the process (and its descendants) with SIGSTOP before each
# dump: the restored (or left running) process must be stopped too (state
# T, staying so), and go on at SIGCONT.
set -u
. "$(dirname "$0")/lib.sh"
CKPT=$1 PROG=$2
shift 2
BEFORE="" CPID="" COMPANION=0 STOPPED=0 ITER=1 LEAVE=0 PIDNS=0 SIG="" RENV="" SETUP="" EXPECT="" DOPTS=() ROPTS=() RWRAP=""
while [ $# -gt 0 ]; do
  case $1 in
    --iterations) ITER=$2; shift 2 ;;
    --leave-running) LEAVE=1; shift ;;
    --pidns) PIDNS=1; shift ;;
    --signal) SIG=$2; shift 2 ;;
    --restore-env) RENV=$2; shift 2 ;;
    --setup) SETUP=$2; shift 2 ;;
    --expect-restore) EXPECT=$2; shift 2 ;;
    --dump-opt) DOPTS+=("$2"); shift 2 ;;
    --restore-opt) ROPTS+=("$2"); shift 2 ;;
    --restore-wrap) RWRAP=$2; shift 2 ;;
    --companion) COMPANION=1; shift ;;
    --stopped) STOPPED=1; shift ;;
    --before-restore) BEFORE=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "unknown option $1"; exit 2 ;;
  esac
done
W=$(mktemp -d /tmp/ckpt-zdtm.XXXXXX)
PID="" RJOB=""
cleanup() {
  [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null
  [ -n "$CPID" ] && kill -9 "$CPID" 2>/dev/null
  # Every process of the test (forked members, restored trees) has the work
  # directory in its arguments: none may outlive a failed test.
  pkill -9 -f -- "$W" 2>/dev/null
  # System V objects a failed test left behind, by key (DIR/ipc_keys).
  for k in $(cat "$W/ipc_keys" "$W/companion/ipc_keys" 2>/dev/null); do
    ipcrm -M "$k" 2>/dev/null; ipcrm -S "$k" 2>/dev/null; ipcrm -Q "$k" 2>/dev/null
  done
  for f in $(cat "$W/shm_files" "$W/companion/shm_files" 2>/dev/null); do rm -f "/dev/shm/$f"; done
  [ -n "$RJOB" ] && wait "$RJOB" 2>/dev/null
  [ -n "$PID" ] && wait "$PID" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; [ -f "$W/result" ] && cat "$W/result"; exit 1; }
[ -n "$SETUP" ] && (cd "$W" && eval "$SETUP")
# Descriptors the test harness holds open must not leak into the program.
close_inherited_fds
"$PROG" "$W" "$@" </dev/null >"$W/stdout" 2>&1 &
PID=$!
wait_for "$W/ready" 120 || fail "program never became ready"
if [ "$COMPANION" = 1 ]; then
  mkdir "$W/companion"
  "$PROG" "$W/companion" "$@" </dev/null >"$W/companion/stdout" 2>&1 &
  CPID=$!
  wait_for "$W/companion/ready" 120 || fail "companion never became ready"
fi

stop_all() {
  [ "$STOPPED" = 1 ] || return 0
  kill -STOP $(tree_pids "$PID")
  for _ in $(seq 1 250); do [ "$(state "$PID")" = T ] && return 0; sleep 0.02; done
  fail "process $PID did not stop"
}
# The process must be stopped, stay stopped, and go on at SIGCONT.
stopped_then_cont() {
  [ "$STOPPED" = 1 ] || return 0
  for _ in $(seq 1 250); do [ "$(state "$PID")" = T ] && break; sleep 0.02; done
  [ "$(state "$PID")" = T ] || fail "process $PID is in state '$(state "$PID")', not stopped (T)"
  local pids
  pids=$(tree_pids "$PID")
  sleep 0.3
  for p in $pids; do
    [ "$(state "$p")" = T ] || [ "$(state "$p")" = Z ] || fail "process $p went on before SIGCONT (state '$(state "$p")')"
  done
  kill -CONT $pids
}

restore() {
  rm -f "$W/restore.json"
  [ -n "$BEFORE" ] && (cd "$W" && eval "$BEFORE")
  local ns=""
  [ "$PIDNS" = 1 ] && ns=--pidns
  env $RENV $RWRAP "$CKPT" restore -D "$W/img" --json $ns "${ROPTS[@]}" >"$W/restore.json" 2>"$W/restore.err" &
  RJOB=$!
  wait_restored
  PID=$RPID
  [ -s "$W/restore.err" ] && cat "$W/restore.err"
  if [ -n "$EXPECT" ] && ! grep -qF "$EXPECT" "$W/restore.json"; then
    cat "$W/restore.json"; fail "restore summary lacks '$EXPECT'"
  fi
  if [ "$PIDNS" = 1 ]; then PIDNS_PID=$PID; fi
}

if [ "$LEAVE" = 1 ]; then
  for i in $(seq 1 "$ITER"); do
    stop_all
    "$CKPT" dump "$PID" -D "$W/img" --leave-running "${DOPTS[@]}" >/dev/null || fail "dump --leave-running $i"
    if [ "$STOPPED" = 1 ]; then
      stopped_then_cont
    else
      state=$(awk '{print $3}' /proc/$PID/stat 2>/dev/null)
      case "$state" in R|S|D) ;; *) fail "process is in state '$state' after a --leave-running dump" ;; esac
    fi
    sleep 0.1
  done
  [ -n "$SIG" ] && kill -"$SIG" "$PID"
  touch "$W/stop"
  wait_for "$W/result" 120 || fail "the process that kept running gave no result"
  grep -q '^PASS' "$W/result" || fail "the process that kept running failed"
  wait "$PID"; PID=""
  rm -f "$W/result" "$W/stop"
  # The image taken while it ran must restore too.
  restore
  stopped_then_cont
else
  for i in $(seq 1 "$ITER"); do
    stop_all
    "$CKPT" dump "$PID" -D "$W/img" "${DOPTS[@]}" >"$W/dump.out" || fail "dump $i"
    # A dump that replaced the previous image removed it (it was swapped out
    # to the temporary name first).
    left=$(ls -A "$W/img" | grep -vx process.ckpt)
    [ -z "$left" ] || fail "dump $i left $left behind in $W/img"
    { if [ -n "$RJOB" ]; then wait "$RJOB"; RJOB=""; else wait "$PID"; fi; } 2>/dev/null
    restore
    stopped_then_cont
    sleep 0.05
  done
fi
[ -n "$SIG" ] && kill -"$SIG" "$PID" && sleep 0.2
touch "$W/stop"
wait_for "$W/result" 300 || fail "no result after restore"
wait "$RJOB"
rc=$?
RJOB="" PID=""
cat "$W/result"
grep -q '^PASS' "$W/result" || exit 1
if [ "$COMPANION" = 1 ]; then
  touch "$W/companion/stop"
  wait_for "$W/companion/result" 120 || fail "the companion gave no result"
  wait "$CPID"; CPID=""
  grep -q '^PASS' "$W/companion/result" || { cat "$W/companion/result"; fail "the companion (not dumped) failed"; }
fi
[ "$rc" = 0 ] || fail "restored process exited with status $rc"
exit 0
