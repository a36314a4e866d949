#!/bin/bash
# `ckpt dump --ipc msg:ID`: a System V message queue the dumped process never
# touches is found only because the command line names it. It must move into
# the image with its messages (types and order), be gone from the host after
# a dump that kills the process, and come back with the same id and the same
# messages on restore. The process is coreutils' `sleep`; messages are sent
# and received through python3's ctypes (libc's msgsnd/msgrcv).
#   run_ipc_option.sh CKPT
set -u
. "$(dirname "$0")/lib.sh"
CKPT=$1
W=$(mktemp -d /tmp/ckpt-ipcopt.XXXXXX)
PID="" RPID="" Q=""
cleanup() {
  [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null
  [ -n "$RPID" ] && kill -9 "$RPID" 2>/dev/null
  [ -n "$Q" ] && ipcrm -q "$Q" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
# Descriptors the test harness holds open must not leak into the program
# (a pipe to the harness would make the dump refuse it: its other end is
# outside the dumped processes).
close_inherited_fds
command -v python3 >/dev/null && command -v ipcmk >/dev/null || { echo "SKIP: needs python3 and ipcmk"; exit 77; }
msg() {  # send QID TYPE TEXT... | recv QID COUNT
  python3 - "$@" <<'PY'
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
class Msg(ctypes.Structure):
    _fields_ = [("type", ctypes.c_long), ("text", ctypes.c_char * 128)]
op, q = sys.argv[1], int(sys.argv[2])
if op == "send":
    for item in sys.argv[3:]:
        t, text = item.split(":", 1)
        m = Msg(int(t), text.encode())
        if libc.msgsnd(q, ctypes.byref(m), len(text), 0) != 0:
            sys.exit("msgsnd: errno %d" % ctypes.get_errno())
else:
    out = []
    for _ in range(int(sys.argv[3])):
        m = Msg()
        n = libc.msgrcv(q, ctypes.byref(m), 128, 0, 0o4000)  # IPC_NOWAIT
        if n < 0:
            sys.exit("msgrcv: errno %d" % ctypes.get_errno())
        out.append("%d:%s" % (m.type, m.text[:n].decode()))
    print(" ".join(out))
PY
}
has_queue() { ipcs -q | awk -v q="$1" '$2 == q {found = 1} END {exit !found}'; }
Q=$(ipcmk -Q | grep -o '[0-9]*$') || fail "ipcmk"
msg send "$Q" 3:three-a 1:one-a 2:two-a 3:three-b 1:one-b || fail "send"
sleep 600 </dev/null >/dev/null 2>&1 &
PID=$!
"$CKPT" dump "$PID" -D "$W/img" --ipc "msg:$Q" --json >"$W/dump.json" 2>&1 || fail "dump: $(cat "$W/dump.json")"
wait "$PID" 2>/dev/null
PID=""
grep -q '"sysv_msg_queues": 1' "$W/dump.json" || fail "the queue is not in the image: $(cat "$W/dump.json")"
has_queue "$Q" && fail "queue $Q is still in the host after a dump that killed the process"
"$CKPT" restore -D "$W/img" --detach --json >"$W/restore.json" 2>&1 || fail "restore: $(cat "$W/restore.json")"
RPID=$(grep -o '"pid": [0-9]*' "$W/restore.json" | grep -o '[0-9]*$')
has_queue "$Q" || fail "queue $Q did not come back with its id"
got=$(msg recv "$Q" 5) || fail "receive: $got"
want="3:three-a 1:one-a 2:two-a 3:three-b 1:one-b"
[ "$got" = "$want" ] || fail "messages after restore: '$got', wanted '$want'"
kill -0 "$RPID" 2>/dev/null || fail "the restored sleep is not running"
echo "queue $Q restored with: $got"
echo PASS
