#!/bin/sh
# Migration between hosts (issue 11): ckpt migrate over ssh:// and ckpt://
# against the raw transfer, a local restore and CRIU's dump -> scp -> restore
# (bench/migrate_net_bench.py). Needs root (namespaces, the engine) and the
# release build. CRIU is never built here: set CKPT_CRIU=/path/to/criu (an
# upstream build) for its row. Results: docs/performance-results.md.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "migrate_net_bench: needs root (network namespaces, the transparent engine); skipped"
  exit 0
fi
if [ ! -x build/bin/migrate_state ] || [ ! -x build/bin/ckptd ]; then
  echo "migrate_net_bench: build/bin/migrate_state or ckptd not built; skipped"
  exit 0
fi
set -- --reps 3
if [ -n "${CKPT_CRIU:-}" ]; then
  set -- "$@" --criu "$CKPT_CRIU"
fi
python3 bench/migrate_net_bench.py "$@"
