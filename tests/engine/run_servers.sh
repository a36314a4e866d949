#!/bin/bash
# Servers waiting for clients across a dump and restore (issue 12): their
# listening TCP (or bound UDP) sockets are bound again at restore, so new
# clients connect and get answers from the process's own state.
#   run_servers.sh CKPT CASE
# CASE: http-server (python3 -m http.server) | node-http (a node http server
#       counting its requests) | udp-echo (python3, a bound UDP socket) |
#       unix-server, unix-abstract (python3 asyncio on a listening Unix
#       socket at a path, with its file mode kept, or an abstract name)
set -u
. "$(dirname "$0")/lib.sh"
CKPT=$1 CASE=$2
W=$(mktemp -d /tmp/ckpt-servers.XXXXXX)
PID="" RJOB=""
cleanup() {
  [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null
  pkill -9 -f -- "$W" 2>/dev/null
  { [ -n "$RJOB" ] && wait "$RJOB"; wait; } 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
fail() { echo "FAIL ($CASE): $*"; exit 1; }
skip() { echo "SKIP ($CASE): $*"; exit 77; }
close_inherited_fds
dump() {
  "$CKPT" dump "$PID" -D "$W/img" >"$W/dump.out" 2>&1 || { cat "$W/dump.out"; fail "dump $1"; }
  [ -n "$RJOB" ] && wait "$RJOB" 2>/dev/null
}
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
get() {  # PATH: the body, retrying while the server starts
  python3 - "$PORT" "$1" <<'PY'
import sys, time, urllib.request
for _ in range(300):
    try:
        print(urllib.request.urlopen("http://127.0.0.1:%s%s" % (sys.argv[1], sys.argv[2]), timeout=10).read().decode(), end="")
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
PY
}

case $CASE in
  http-server)
    mkdir "$W/www"
    head -c 200000 /dev/urandom | base64 >"$W/www/data.txt"
    want=$(sha256sum <"$W/www/data.txt")
    python3 -m http.server "$PORT" --bind 127.0.0.1 --directory "$W/www" </dev/null >/dev/null 2>"$W/err" &
    PID=$!
    [ "$(get /data.txt | sha256sum)" = "$want" ] || fail "no answer before the dump"
    for round in 1 2; do
      dump $round
      restore
      PID=$RPID
      [ "$(get /data.txt | sha256sum)" = "$want" ] || fail "round $round: wrong or no answer after the restore"
    done
    echo "PASS (http-server: answered after two restores)"
    ;;
  node-http)
    command -v node >/dev/null || skip "node not installed"
    node -e "let n = 0; require('http').createServer((q, r) => r.end('request ' + n++)).listen($PORT, '127.0.0.1')" \
      </dev/null >/dev/null 2>"$W/err" &
    PID=$!
    [ "$(get /)" = "request 0" ] || fail "no answer before the dump"
    [ "$(get /)" = "request 1" ] || fail "second answer"
    next=2
    for round in 1 2; do
      dump $round
      restore
      PID=$RPID
      for _ in 1 2; do
        got=$(get /)
        [ "$got" = "request $next" ] || fail "round $round: '$got', expected 'request $next'"
        next=$((next + 1))
      done
    done
    echo "PASS (node-http: the request count went on, $next requests)"
    ;;
  udp-echo)
    python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
n = 0
while True:
    data, peer = s.recvfrom(2048)
    n += 1
    s.sendto(b"%d " % n + data, peer)' "$PORT" </dev/null >/dev/null 2>"$W/err" &
    PID=$!
    ask() {
      python3 - "$PORT" "$1" <<'PY'
import socket, sys
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.settimeout(0.2)
for _ in range(100):
    c.sendto(sys.argv[2].encode(), ("127.0.0.1", int(sys.argv[1])))
    try:
        print(c.recvfrom(2048)[0].decode())
        sys.exit(0)
    except socket.timeout:
        pass
sys.exit(1)
PY
    }
    first=$(ask hello) || fail "no echo before the dump"
    n=${first%% *}
    for round in 1 2; do
      dump $round
      restore
      PID=$RPID
      got=$(ask "round $round") || fail "round $round: no echo after the restore"
      [ "${got%% *}" -gt "$n" ] && [ "${got#* }" = "round $round" ] || fail "round $round: echo '$got' after $n"
      n=${got%% *}
    done
    echo "PASS (udp-echo: answered after two restores, its count went on)"
    ;;
  unix-server | unix-abstract)
    # python3's asyncio on a listening Unix socket (a path, or an abstract
    # name), counting its clients; a new client after each restore.
    if [ "$CASE" = unix-server ]; then ADDR="$W/server.sock"; else ADDR="@ckpt-test-$$-$RANDOM"; fi
    python3 -c '
import asyncio, sys
addr = sys.argv[1].replace("@", "\0", 1) if sys.argv[1].startswith("@") else sys.argv[1]
n = 0
async def serve(reader, writer):
    global n
    line = await reader.readline()
    n += 1
    writer.write(b"%d %s" % (n, line))
    await writer.drain()
    writer.close()
async def main():
    srv = await asyncio.start_unix_server(serve, addr)
    async with srv:
        await srv.serve_forever()
asyncio.run(main())' "$ADDR" </dev/null >/dev/null 2>"$W/err" &
    PID=$!
    ask() {
      python3 - "$ADDR" "$1" <<'PY'
import socket, sys, time
addr = sys.argv[1].replace("@", "\0", 1) if sys.argv[1].startswith("@") else sys.argv[1]
for _ in range(300):
    try:
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.settimeout(10)
        c.connect(addr)
        c.sendall(sys.argv[2].encode() + b"\n")
        print(c.makefile().readline().strip())
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
PY
    }
    [ "$(ask hello)" = "1 hello" ] || fail "no answer before the dump"
    mode=""
    [ "$CASE" = unix-server ] && { chmod 0660 "$ADDR"; mode=$(stat -c %a "$ADDR"); }
    for round in 1 2; do
      dump $round
      restore
      PID=$RPID
      got=$(ask "round $round") || fail "round $round: no answer after the restore"
      [ "$got" = "$((round + 1)) round $round" ] || fail "round $round: '$got', expected '$((round + 1)) round $round'"
      [ -z "$mode" ] || [ "$(stat -c %a "$ADDR")" = "$mode" ] || fail "round $round: socket file mode $(stat -c %a "$ADDR")"
    done
    echo "PASS ($CASE: answered after two restores, its count went on)"
    ;;
  unix-external)
    # A client whose datagram socket is connected to a log server outside
    # the dump (as a syslog client to /dev/log): refused without
    # --external-unix, connected to the server's name again with it; the
    # server sees every number once, in order.
    python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as log:
    while True:
        log.write(s.recv(64).decode() + "\n")' "$W/log.sock" "$W/log.txt" </dev/null >/dev/null 2>"$W/err" &
    SERVER=$!
    while [ ! -S "$W/log.sock" ]; do sleep 0.01; done
    python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(sys.argv[1])
n = 0
while True:
    n += 1
    s.send(b"%d" % n)
    time.sleep(0.005)' "$W/log.sock" </dev/null >/dev/null 2>>"$W/err" &
    PID=$!
    while [ "$(wc -l <"$W/log.txt" 2>/dev/null || echo 0)" -lt 20 ]; do sleep 0.01; done
    if "$CKPT" dump "$PID" -D "$W/img" >"$W/dump.out" 2>&1; then fail "dumped without --external-unix"; fi
    grep -q -- "--external-unix $W/log.sock" "$W/dump.out" || { cat "$W/dump.out"; fail "the refusal does not name the option"; }
    kill -0 "$PID" || fail "the refused client is gone"
    for round in 1 2; do
      "$CKPT" dump "$PID" -D "$W/img" --external-unix "$W/log.sock" >"$W/dump.out" 2>&1 || { cat "$W/dump.out"; fail "dump $round"; }
      [ -n "$RJOB" ] && wait "$RJOB" 2>/dev/null
      before=$(wc -l <"$W/log.txt")
      restore
      PID=$RPID
      while [ "$(wc -l <"$W/log.txt")" -lt $((before + 20)) ]; do sleep 0.01; done
    done
    kill -9 "$PID" "$SERVER"
    awk '$1 != NR { print "line " NR ": " $0; exit 1 }' "$W/log.txt" || fail "the server missed or repeated a message"
    echo "PASS (unix-external: $(wc -l <"$W/log.txt") messages in order across two restores)"
    ;;
  *) fail "unknown case" ;;
esac
