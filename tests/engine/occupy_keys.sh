#!/bin/bash
# Takes the System V keys a test program listed in ./ipc_keys with
# placeholder segments, as another user of this host would (the harness
# removes them by key afterwards).
exec python3 -c '
import ctypes
c = ctypes.CDLL(None)
for k in open("ipc_keys").read().split():
    c.shmget(int(k), 4096, 0o1600)
'
