#!/bin/sh
# Engine v2: the cost of preserving communication state (time and space
# overhead, bench/engine_v2_bench.cc) and the 2-process 256 MiB System V
# pair. Needs root and a native Linux x86-64 build. Results:
# docs/performance.md ("Engine v2").
set -eu
cd "$(dirname "$0")/.."
if [ ! -x build/bin/engine_v2_bench ]; then
  echo "engine_v2_bench not built (native Linux x86-64 only)"
  exit 0
fi
dir=$(mktemp -d /var/tmp/ckpt-v2-bench.XXXXXX)
trap 'rm -rf "$dir"' EXIT
build/bin/engine_v2_bench --reps 11 --mib 64 --dir "$dir"
