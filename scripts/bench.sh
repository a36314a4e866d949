#!/bin/sh
# `make bench`: every benchmark; results belong in docs/performance-results.md (method in docs/performance.md).
set -eu
cd "$(dirname "$0")/.."
export WINEDEBUG=-all
echo "== safepoint cost (bench/safepoint_bench.cc)"
build/bin/safepoint_bench --benchmark_min_time=0.2 2>/dev/null | sed -n '/safepoint overhead/,$p'
echo
echo "== checkpoint write / resume read throughput (bench/write_bench.cc)"
build/bin/write_bench build/bench-tmp --sizes 64,256,1024 --codecs none,zstd
build/bin/write_bench build/bench-tmp --sizes 64,256 --codecs zlib | tail -n +3
echo
echo "== Linux -> Windows migration of examples/heat (bench/migrate_bench.py)"
python3 bench/migrate_bench.py
for extra in bench/*.sh; do
  [ -e "$extra" ] || continue
  echo
  echo "== $extra"
  sh "$extra"
done
