#!/bin/sh
# Transparent engine: dump and restore of 1 GiB against a raw write/read of
# the same bytes (bench/engine_bench.cc). Needs root (ptrace, clone3 set_tid)
# and a native Linux x86-64 build. Results: docs/performance-results.md.
set -eu
cd "$(dirname "$0")/.."
if [ ! -x build/bin/engine_bench ]; then
  echo "engine_bench not built (native Linux x86-64 only)"
  exit 0
fi
dir=$(mktemp -d /var/tmp/ckpt-engine-bench.XXXXXX)
trap 'rm -rf "$dir"' EXIT
build/bin/engine_bench --reps 5 --dir "$dir"
