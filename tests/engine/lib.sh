# Shell helpers of the engine's test scripts (sourced). The script defines
# fail() (its message and exit) and $W (its work directory).

# wait_for FILE SECONDS: until FILE is non-empty; false on timeout.
wait_for() {
  for _ in $(seq 1 $(($2 * 50))); do [ -s "$1" ] && return 0; sleep 0.02; done
  return 1
}

# wait_exists FILE SECONDS: until FILE exists (it may be empty).
wait_exists() {
  for _ in $(seq 1 $(($2 * 50))); do [ -e "$1" ] && return 0; sleep 0.02; done
  return 1
}

# Closes every descriptor above 2 this shell inherited (the test harness's
# pipes): a program to be dumped must not share them (they would be pipes to
# a process outside the dump).
close_inherited_fds() {
  for fd in $(ls /proc/$$/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null; done
}

# After `ckpt restore ... --json >"$W/restore.json" 2>"$W/restore.err" &`
# with RJOB=$!: waits until the restored PID is printed and sets RPID.
wait_restored() {
  for _ in $(seq 1 1500); do
    grep -q '"pid"' "$W/restore.json" 2>/dev/null && break
    kill -0 "$RJOB" 2>/dev/null || { cat "$W/restore.err"; fail "restore failed"; }
    sleep 0.02
  done
  RPID=$(sed -n 's/.*"pid": \([0-9]*\).*/\1/p' "$W/restore.json")
  [ -n "$RPID" ] || fail "restore printed no PID"
}

# `ckpt restore` of $W/img in the background, with --json (needs CKPT):
# sets RJOB and, once it printed the PID, RPID.
restore() {
  rm -f "$W/restore.json"
  "$CKPT" restore -D "$W/img" --json >"$W/restore.json" 2>"$W/restore.err" &
  RJOB=$!
  wait_restored
}

# BIN/PROGRAM W ARGS... in the background (output in W/stdout), once it has
# written W/ready: PID is its process id. Needs BIN, W and fail().
start() {  # PROGRAM ARGS...
  local p=$1
  shift
  "$BIN/$p" "$W" "$@" </dev/null >"$W/stdout" 2>&1 &
  PID=$!
  wait_for "$W/ready" 120 || fail "$p never became ready"
}

# The state letter of process PID (R, S, T, t, Z...), "" if it is gone.
state() { awk '{print $3}' "/proc/$1/stat" 2>/dev/null; }

# PID and every process below it (bash).
tree_pids() {
  local todo=("$1") p
  while [ ${#todo[@]} -gt 0 ]; do
    p=${todo[0]}
    todo=("${todo[@]:1}")
    echo "$p"
    for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do todo+=("$c"); done
  done
}
