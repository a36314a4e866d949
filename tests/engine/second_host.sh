#!/bin/bash
# Runs a command as on a "second host": fresh IPC, mount and network
# namespaces, with an empty tmpfs on /dev/shm (no System V object, key or
# POSIX shm file of this host is visible).
#   second_host.sh CMD ARGS...
exec unshare --ipc --mount --net --propagation private \
  bash -c 'mount -t tmpfs -o mode=1777 tmpfs /dev/shm && exec "$@"' second-host "$@"
