#!/bin/sh
# Fails, naming the files and lines, when a tracked C/C++ file is not as
# clang-format (.clang-format) would write it. `make format` fixes them.
set -eu
cd "$(dirname "$0")/.."
echo "== clang-format: every tracked C/C++ file"
git ls-files '*.c' '*.cc' '*.h' '*.hpp' | xargs clang-format --dry-run -Werror
