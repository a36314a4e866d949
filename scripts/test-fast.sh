#!/bin/sh
# The fast tier (`make test-fast`, a few minutes): the formatting of every
# tracked C/C++ file, clang-tidy on the C++ files changed since BASE (the
# first argument; default: the merge base with origin/main, else HEAD~1),
# and the unit tests. `make test` is the long tier; `.ci/run` runs the
# formatting check before it, so a badly formatted change fails in seconds.
#
# clang-tidy runs the checks of .clang-tidy and prints what they find; the
# ones in ERRORS (bugs, not style) fail the tier.
set -eu
cd "$(dirname "$0")/.."
ERRORS="bugprone-use-after-move,bugprone-dangling-handle,bugprone-undefined-memory-manipulation,\
bugprone-infinite-loop,bugprone-string-constructor,bugprone-suspicious-memset-usage,\
bugprone-unused-return-value,performance-move-const-arg"

scripts/check-format.sh

if [ $# -gt 0 ]; then
  base=$1
elif git rev-parse -q --verify origin/main >/dev/null; then
  base=$(git merge-base HEAD origin/main)
else
  base=$(git rev-parse -q --verify HEAD~1 || git rev-parse HEAD)
fi
files=$(git diff --name-only --diff-filter=AM "$base" -- '*.cc' | grep -E '^(src|tools|tests|examples|bench)/' || true)
# Only files the release build compiles (compile_commands.json knows their flags).
files=$(python3 - "$files" <<'PY'
import json, os, sys
known = {os.path.realpath(e["file"]) for e in json.load(open("build/compile_commands.json"))}
print(" ".join(f for f in sys.argv[1].split() if os.path.realpath(f) in known))
PY
)
if [ -n "$files" ] && command -v clang-tidy >/dev/null 2>&1; then
  echo "== clang-tidy: $(echo "$files" | wc -w) files changed since $(git rev-parse --short "$base")"
  # shellcheck disable=SC2086
  clang-tidy -p build --quiet --warnings-as-errors="$ERRORS" $files 2>/dev/null
else
  echo "== clang-tidy: no changed C++ files since $(git rev-parse --short "$base")"
fi

echo "== unit tests"
ctest --test-dir build -L unit -j "$(nproc)" --output-on-failure
