#!/bin/sh
# `make demo`: runs scripts/demo.py (after `make build cross`).
set -eu
cd "$(dirname "$0")/.."
exec python3 scripts/demo.py
