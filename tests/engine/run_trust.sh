#!/bin/bash
# Images and trust (docs/engine.md, "Images, credentials and trust"):
#   run_trust.sh CKPT BINDIR CASE
# image-files     images are 0600 (or --image-mode), written under an
#                 unpredictable temporary name created exclusively: a symlink
#                 or a file planted at the old name process.ckpt.tmp is never
#                 followed, truncated or used; a temporary image no dump holds
#                 any more is removed by the next dump;
# credentials     a process running as uid 65534 with a few capabilities,
#                 supplementary groups, securebits and no_new_privs, dumped
#                 and restored by root, runs again exactly so (every Uid, Gid,
#                 Groups, Cap* and NoNewPrivs line of every thread, and it
#                 stays dumpable), and its data is intact;
# credentials-fewer a ckpt lacking a capability the process had restores it
#                 without it (never with more than recorded) and warns;
# untrusted-image an image that belongs to another user, or that others may
#                 write, is refused by `ckpt restore` unless --trust-image.
set -u
. "$(dirname "$0")/lib.sh"
CKPT=$1 BIN=$2 CASE=$3
W=$(mktemp -d /tmp/ckpt-trust.XXXXXX)
chmod 755 "$W"
PID=""
cleanup() {
  [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null
  pkill -9 -f -- "$W" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
fail() { echo "FAIL ($CASE): $*"; [ -f "$W/run/result" ] && cat "$W/run/result"; exit 1; }
close_inherited_fds
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
# The program's own directory: writable by whatever user it runs as.
mkdir -m 1777 "$W/run"
start() {  # [WRAPPER...] PROGRAM: runs BIN/PROGRAM "$W/run" under WRAPPER
  "$@" "$W/run" </dev/null >"$W/run/stdout" 2>&1 &
  PID=$!
  wait_for "$W/run/ready" 60 || fail "the program never became ready"
}
finish() {  # the program (maybe restored) checks its data
  touch "$W/run/stop"
  wait_for "$W/run/result" 120 || fail "no result"
  grep -q '^PASS' "$W/run/result" || fail "the program failed"
}
mode_of() { stat -c %a "$1"; }
no_temp_left() {  # DIR: only the image remains
  local left
  left=$(ls -A "$1" | grep -vx process.ckpt | grep -vx process.ckpt.tmp | grep -v fedcba9876543210)
  [ -z "$left" ] || fail "left in $1: $left"
}

case $CASE in
  image-files)
    start "$BIN/zdtm_counter"
    "$CKPT" dump "$PID" -D "$W/a" --leave-running >/dev/null || fail "dump"
    [ "$(mode_of "$W/a/process.ckpt")" = 600 ] || fail "image mode $(mode_of "$W/a/process.ckpt"), expected 600"
    no_temp_left "$W/a"
    # A replacing dump: still 0600, the previous image gone.
    "$CKPT" dump "$PID" -D "$W/a" --leave-running >/dev/null || fail "second dump"
    [ "$(mode_of "$W/a/process.ckpt")" = 600 ] || fail "replacing image mode $(mode_of "$W/a/process.ckpt")"
    no_temp_left "$W/a"
    # --image-mode widens it, exactly (the umask does not apply).
    (umask 077 && "$CKPT" dump "$PID" -D "$W/b" --leave-running --image-mode 0644 >/dev/null) || fail "dump 0644"
    [ "$(mode_of "$W/b/process.ckpt")" = 644 ] || fail "--image-mode 0644 gave $(mode_of "$W/b/process.ckpt")"
    for bad in 0400 4755 1777 abc; do
      "$CKPT" dump "$PID" -D "$W/c" --image-mode "$bad" >"$W/err" 2>&1
      [ $? = 2 ] || { cat "$W/err"; fail "--image-mode $bad was accepted"; }
    done
    kill -0 "$PID" || fail "the process died"
    # A symlink planted at the old temporary name: the victim file stays.
    mkdir "$W/d"
    echo victim >"$W/victim"
    ln -s "$W/victim" "$W/d/process.ckpt.tmp"
    "$CKPT" dump "$PID" -D "$W/d" --leave-running >/dev/null || fail "dump next to a planted symlink"
    [ "$(cat "$W/victim")" = victim ] || fail "the dump wrote through a planted symlink"
    [ -L "$W/d/process.ckpt" ] && fail "the image is a symlink"
    # A world-writable file planted by another user at that name: not used.
    mkdir "$W/e"
    install -m 0666 -o 65534 /dev/null "$W/e/process.ckpt.tmp"
    "$CKPT" dump "$PID" -D "$W/e" --leave-running >/dev/null || fail "dump next to a planted file"
    [ -s "$W/e/process.ckpt.tmp" ] && fail "the dump wrote into a file planted by another user"
    [ "$(stat -c '%u %a' "$W/e/process.ckpt")" = "0 600" ] || fail "image is $(stat -c '%u %a' "$W/e/process.ckpt")"
    no_temp_left "$W/e"
    "$CKPT" verify "$W/e/process.ckpt" >/dev/null || fail "the image does not verify"
    # What a dump killed beyond help left (no lock held): removed by the
    # next dump; another user's file of that form stays.
    head -c 4096 /dev/zero >"$W/e/process.ckpt.0123456789abcdef.tmp"
    install -m 0600 -o 65534 /dev/null "$W/e/process.ckpt.fedcba9876543210.tmp"
    "$CKPT" dump "$PID" -D "$W/e" --leave-running >/dev/null || fail "dump next to a stale temporary image"
    [ -e "$W/e/process.ckpt.0123456789abcdef.tmp" ] && fail "a stale temporary image was not removed"
    [ -e "$W/e/process.ckpt.fedcba9876543210.tmp" ] || fail "another user's file was removed"
    finish
    ;;
  credentials)
    start setpriv --reuid 65534 --regid 65534 --groups 4,24 --inh-caps +net_bind_service,+net_raw \
      --ambient-caps +net_bind_service --bounding-set -sys_module,-sys_rawio --securebits +noroot --nnp \
      "$BIN/zdtm_threads"
    sleep 0.2
    creds() { for t in /proc/$1/task/*; do grep -E '^(Uid|Gid|Groups|Cap|NoNewPrivs)' "$t/status"; done; }
    creds "$PID" >"$W/before"
    grep -q '^Uid:.65534' "$W/before" || fail "setpriv did not give the program uid 65534: $(head -1 "$W/before")"
    owner=$(stat -c %u "/proc/$PID/status")
    "$CKPT" dump "$PID" -D "$W/img" >/dev/null || fail "dump"
    wait "$PID" 2>/dev/null
    "$CKPT" inspect "$W/img" | grep -q "runs as     uid 65534 gid 65534" || fail "inspect shows no credentials"
    RPID=$("$CKPT" restore -D "$W/img" --detach) || fail "restore"
    PID=$RPID
    sleep 0.2
    creds "$PID" >"$W/after"
    diff "$W/before" "$W/after" >"$W/diff" || { cat "$W/diff"; fail "credentials differ after the restore"; }
    [ "$(stat -c %u "/proc/$PID/status")" = "$owner" ] || fail "the restored process is no longer dumpable"
    finish
    ;;
  credentials-fewer)
    # ckpt itself lacks a capability the process had (here CAP_NET_RAW in
    # its bounding set): the process is restored without it, never with
    # more than it had, and ckpt says so.
    start "$BIN/zdtm_counter"
    grep -E '^(Uid|Gid|Groups|Cap|NoNewPrivs)' "/proc/$PID/status" >"$W/before"
    "$CKPT" dump "$PID" -D "$W/img" >/dev/null || fail "dump"
    wait "$PID" 2>/dev/null
    PID=$(setpriv --bounding-set -net_raw "$CKPT" restore -D "$W/img" --detach 2>"$W/err") || {
      cat "$W/err"
      fail "restore by a ckpt without CAP_NET_RAW in its bounding set"
    }
    grep -q "runs without capabilities 0000000000002000" "$W/err" || { cat "$W/err"; fail "no warning"; }
    grep -E '^(Uid|Gid|Groups|Cap|NoNewPrivs)' "/proc/$PID/status" >"$W/after"
    # Every set as before, less CAP_NET_RAW (bit 13): ckpt had it in none.
    without() {
      local k v
      while IFS=$'\t' read -r k v; do
        case $k in Cap*) printf '%s\t%016x\n' "$k" $((0x$v & ~0x2000)) ;; *) printf '%s\t%s\n' "$k" "$v" ;; esac
      done <"$1"
    }
    diff <(without "$W/before") "$W/after" || fail "the credentials are not the recorded ones less CAP_NET_RAW"
    finish
    ;;
  untrusted-image)
    start "$BIN/zdtm_counter"
    "$CKPT" dump "$PID" -D "$W/img" >/dev/null || fail "dump"
    wait "$PID" 2>/dev/null
    PID=""
    chown 65534 "$W/img/process.ckpt"
    "$CKPT" restore -D "$W/img" --detach >"$W/err" 2>&1
    rc=$?
    [ "$rc" = 3 ] || { cat "$W/err"; fail "an image of uid 65534 was restored by root (exit $rc)"; }
    grep -q "belongs to uid 65534.*--trust-image" "$W/err" || { cat "$W/err"; fail "refusal lacks its reason"; }
    chown 0 "$W/img/process.ckpt"
    chmod 0622 "$W/img/process.ckpt"
    "$CKPT" restore -D "$W/img" --detach >"$W/err" 2>&1
    rc=$?
    [ "$rc" = 3 ] || { cat "$W/err"; fail "an image others may write was restored (exit $rc)"; }
    grep -q "other users may write it.*--trust-image" "$W/err" || { cat "$W/err"; fail "refusal lacks its reason"; }
    chown 65534 "$W/img/process.ckpt"
    chmod 0600 "$W/img/process.ckpt"
    PID=$("$CKPT" restore -D "$W/img" --detach --trust-image) || fail "restore with --trust-image"
    finish
    ;;
  *) fail "unknown case" ;;
esac
echo "PASS ($CASE)"
