#!/bin/sh
# Runs every suite of `make test`: the release build's ctest (unit, e2e,
# hetero, engine, group, migrate labels), the sanitizer build's ctest, then a
# bounded libFuzzer run on the image reader. Extra arguments go to both ctest runs.
set -eu
cd "$(dirname "$0")/.."
export WINEDEBUG=-all
# One wineserver for the whole run (Wine starts in ~0.3 s instead of ~2.5 s);
# it exits by itself 60 s after its last client. Not killed here: other Wine
# users on the machine may share it.
if command -v wineserver >/dev/null 2>&1; then
  wineserver -p60 </dev/null >/dev/null 2>&1 || true
fi
status=0
echo "== release build: ctest"
ctest --test-dir build --output-on-failure -j 2 --timeout 600 "$@" || status=1
echo "== sanitizer build (ASan+UBSan): ctest"
ctest --test-dir build/asan --output-on-failure -j 2 --timeout 900 "$@" || status=1
if [ -x build/fuzz/bin/fuzz_image_reader ]; then
  echo "== libFuzzer: image reader, 30 s"
  mkdir -p build/fuzz/corpus
  build/fuzz/bin/fuzz_image_reader -max_total_time=30 -timeout=10 -rss_limit_mb=2048 \
    build/fuzz/corpus tests/fuzz/seeds >build/fuzz/fuzz.log 2>&1 || { tail -50 build/fuzz/fuzz.log; status=1; }
  tail -3 build/fuzz/fuzz.log
fi
exit $status
